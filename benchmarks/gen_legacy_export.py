"""Generate a realistic legacy Login Portal export for the import benchmark (SPEC 4, 9).

Deterministic for a given --seed. What makes it realistic:
- Japanese names, the family and given name joined by a full-width space, a half-width space or
  nothing; a few names in Latin letters;
- messy phones: hyphens, full-width digits and hyphens, brackets, +81, extensions, too short,
  empty; about half already 4-32 plain digits;
- thousands of contracts, ~25% parents and ~75% children, rows shuffled so that many child rows
  come before their parent's first row;
- login-ID conflicts: ~1.5% of Business Portal rows reuse the login ID of a native Business Portal
  user (`native<k>@example.co.jp`, k < --natives: bench_migration.py seeds those users), ~0.5% of
  SDPF rows reuse a login ID of another child contract, and a few suffixed IDs are taken too;
- a few bad rows (~0.1%): malformed e-mail or ECID, duplicates (same login ID and contract),
  unknown is_admin values.

    python benchmarks/gen_legacy_export.py --rows 1000000 --out /tmp/legacy.csv

With ``--portal business|sdpf`` it writes the users a new portal already has instead (the input
of ``import-portal-users``, SPEC 12): every row of that portal's contract kind, no collisions with
native users, and ~80% with a well-formed password hash (argon2id, bcrypt, Werkzeug scrypt or
pbkdf2: the import checks the format, it does not verify), a few malformed ones.

    python benchmarks/gen_legacy_export.py --rows 1000000 --portal business --out /tmp/portal.csv
"""
import argparse
import csv
import random
import sys

FAMILY = ("佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤 吉田 山田 佐々木 山口 松本 井上 木村 林 "
          "斎藤 清水 山崎 森 池田 橋本 阿部 石川 山下 中島 石井 小川 前田 岡田 長谷川 藤田 後藤 "
          "近藤 村上 遠藤 青木 坂本").split()
GIVEN = ("太郎 次郎 花子 一郎 健太 翔太 美咲 陽菜 結衣 大輔 直樹 由美 恵子 誠 学 裕子 真由美 拓也 "
         "彩 愛 さくら ひなた 蓮 湊 陽翔 樹 悠真 葵 凛 芽依 莉子 結菜 智子 和也 達也 亮 聡 恭子 "
         "洋子 明美").split()
ROMAJI = ("sato suzuki takahashi tanaka ito watanabe yamamoto nakamura kobayashi kato yoshida yamada "
          "sasaki yamaguchi matsumoto inoue kimura hayashi saito shimizu").split()
DOMAINS = ("example.co.jp", "example.jp", "example.ne.jp", "example.com", "corp.example.jp")
COMPANY = ("商事", "物流", "工業", "電機", "システムズ", "ネットワークス", "ホールディングス", "製作所")
FW = str.maketrans("0123456789-", "０１２３４５６７８９－")
B64 = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
BCRYPT64 = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./"


def portal_hash(rng: random.Random) -> str:
    """A well-formed hash as a portal stores it (mostly argon2id or bcrypt), empty, or malformed."""
    kind = rng.random()
    if kind < 0.20:
        return ""
    if kind < 0.50:
        return ("$argon2id$v=19$m=19456,t=2,p=1$" + "".join(rng.choices(B64, k=22)) + "$"
                + "".join(rng.choices(B64, k=43)))
    if kind < 0.85:
        return "$2b$12$" + "".join(rng.choices(BCRYPT64, k=53))
    if kind < 0.95:
        return "scrypt:32768:8:1$" + "".join(rng.choices(B64[:62], k=16)) + "$" + rng.randbytes(64).hex()
    if kind < 0.9995:
        return "pbkdf2:sha256:600000$" + "".join(rng.choices(B64[:62], k=16)) + "$" + rng.randbytes(32).hex()
    return "$2b$12$truncated"


def phone(rng: random.Random) -> str:
    area = rng.choice(("03", "06", "045", "052", "090", "080", "070", "011"))
    a, b = f"{rng.randrange(10000):04d}", f"{rng.randrange(10000):04d}"
    kind = rng.random()
    if kind < 0.45:
        return f"{area}{a}{b}"
    if kind < 0.70:
        return f"{area}-{a}-{b}"
    if kind < 0.78:
        return f"{area}-{a}-{b}".translate(FW)
    if kind < 0.83:
        return f"({area}) {a} {b}"
    if kind < 0.87:
        return f"+81-{area[1:]}-{a}-{b}"
    if kind < 0.90:
        return f"{area}-{a}-{b} 内線{rng.randrange(100, 999)}"
    if kind < 0.93:
        return str(rng.randrange(100))  # too short: becomes 0312345678
    if kind < 0.95:
        return "未登録"
    return ""


def name(rng: random.Random) -> str:
    family, given = rng.choice(FAMILY), rng.choice(GIVEN)
    kind = rng.random()
    if kind < 0.55:
        return f"{family}\u3000{given}"
    if kind < 0.85:
        return f"{family} {given}"
    if kind < 0.97:
        return f"{family}{given}"
    return f"{rng.choice(ROMAJI).title()} {rng.choice(ROMAJI).title()}"


def generate(rows: int, out, seed: int = 20261126, natives: int = 20000, contracts: int | None = None,
             portal: str | None = None):
    rng = random.Random(seed)
    contracts = contracts or max(8, min(8000, rows // 150))
    parents = max(2, contracts // 4)
    parent_ids = [f"ecid{1_000_000_000 + i:010d}" for i in range(parents)]
    child_ids = [f"ecid{5_000_000_000 + i:010d}" for i in range(contracts - parents)]
    parent_of = {c: rng.choice(parent_ids) for c in child_ids}
    names = {e: f"{rng.choice(FAMILY)}{rng.choice(COMPANY)}株式会社" for e in parent_ids + child_ids}
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["login_id", "email", "name", "phone", "contract_ecid", "parent_ecid", "contract_name",
                     "is_admin", "password_hash", "department"])
    recent_child_logins: list[str] = []
    last_row = None
    for n in range(rows):
        is_parent = rng.random() < 0.25 if portal is None else portal == "business"
        ecid = rng.choice(parent_ids) if is_parent else rng.choice(child_ids)
        parent = "" if is_parent else parent_of[ecid]
        local = f"{rng.choice(ROMAJI)}.{n}"
        domain = rng.choice(DOMAINS)
        login_id = f"{local}@{domain}"
        r = rng.random()
        if portal is not None:
            pass  # the portal's own users: nothing to collide with yet
        elif is_parent and r < 0.015:
            login_id = f"native{rng.randrange(natives)}@example.co.jp"  # taken by a native user
            if rng.random() < 0.02:
                login_id = login_id.upper()
        elif not is_parent and r < 0.005 and recent_child_logins:
            login_id = rng.choice(recent_child_logins)  # same legacy ID under another child contract
        elif rng.random() < 0.05:
            login_id = f"{rng.choice(ROMAJI)}{n}"  # not an e-mail address: legacy IDs often are not
        if not is_parent and rng.random() < 0.01:
            recent_child_logins.append(login_id)
            if len(recent_child_logins) > 500:
                recent_child_logins.pop(0)
        email = login_id if "@" in login_id and rng.random() < 0.7 else f"{local}@{domain}"
        if rng.random() < 0.03:
            email = email.replace(local, local.title(), 1)
        admin = rng.choice(("1", "0", "0", "0", "true", "FALSE", "yes", "no", "")) if rng.random() < 0.3 \
            else "0"
        if portal is not None:
            pw = portal_hash(rng)
        else:
            pw = "$2b$12$" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ./")
                                     for _ in range(53)) if rng.random() < 0.3 else ""
        row = [login_id, email, name(rng), phone(rng), ecid.upper() if rng.random() < 0.02 else ecid,
               parent, names[ecid], admin, pw, rng.choice(("営業部", "情報システム部", "", "総務部"))]
        bad = rng.random()
        if bad < 0.0003:
            row[1] = row[1].replace("@", " at ")  # malformed e-mail
        elif bad < 0.0006:
            row[4] = "ecid12345"  # malformed ECID
        elif bad < 0.0008:
            row[7] = "maybe"  # unknown is_admin
        elif bad < 0.0012 and last_row is not None:
            row = list(last_row)  # the same legacy user twice: the second is rejected
            row[0] = row[0].upper() if rng.random() < 0.5 else row[0]
        writer.writerow(row)
        last_row = row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", default="-")
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--natives", type=int, default=20000, help="native Business Portal users to collide with")
    ap.add_argument("--encoding", default="utf-8", choices=("utf-8", "utf-8-sig", "cp932"))
    ap.add_argument("--portal", choices=("business", "sdpf"), default=None,
                    help="write a portal's own users (import-portal-users) instead of a legacy export")
    args = ap.parse_args(argv)
    if args.out == "-":
        generate(args.rows, sys.stdout, args.seed, args.natives, portal=args.portal)
        return
    with open(args.out, "w", encoding=args.encoding, newline="") as fh:
        generate(args.rows, fh, args.seed, args.natives, portal=args.portal)


if __name__ == "__main__":
    main()
