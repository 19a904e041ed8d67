"""Every visible string and every mail has a Japanese translation (Japanese is the default)."""
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import read_mo

ROOT = Path(__file__).resolve().parent.parent
METHOD_MAP = [("**.py", "python"), ("templates/**.html", "jinja2"), ("templates/**.txt", "jinja2")]
SKIP_DIRS = {".venv", "tests", "benchmarks", "migrations", "static", "instance", "node_modules"}


def _extracted() -> dict[str, str]:
    found = {}

    def callback(filename, method, options):
        return None

    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), METHOD_MAP, options_map={"templates/**.html": {}, "templates/**.txt": {}},
        callback=callback,
        keywords={**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None},
        directory_filter=lambda d: Path(d).name not in SKIP_DIRS,
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def _japanese() -> dict[str, str]:
    merged = {}
    for mo in ROOT.glob("translations/*/ja/LC_MESSAGES/messages.mo"):
        with open(mo, "rb") as fh:
            for message in read_mo(fh):
                key = message.id[0] if isinstance(message.id, tuple) else message.id
                value = message.string[0] if isinstance(message.string, tuple) else message.string
                if key and value:
                    merged[key] = value
    return merged


def test_every_visible_string_has_a_japanese_translation():
    ja = _japanese()
    missing = {msgid: where for msgid, where in _extracted().items() if msgid not in ja}
    assert not missing, "untranslated (add them to translations/<area>/ja/LC_MESSAGES/messages.po):\n" + \
        "\n".join(f"  {where}: {msgid!r}" for msgid, where in sorted(missing.items(), key=lambda x: x[1]))


def test_areas_never_translate_the_same_string_differently():
    """Catalogs of all areas are merged into one: a msgid translated twice must agree."""
    from babel.messages.pofile import read_po

    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for po in sorted(ROOT.glob("translations/*/ja/LC_MESSAGES/messages.po")):
        with open(po, "rb") as fh:
            for message in read_po(fh):
                key = message.id[0] if isinstance(message.id, tuple) else message.id
                value = message.string[0] if isinstance(message.string, tuple) else message.string
                if not key or not value:
                    continue
                area = po.parts[-4]
                if key in seen and seen[key][1] != value:
                    clashes.append(f"{key!r}: {seen[key][0]}={seen[key][1]!r} vs {area}={value!r}")
                seen.setdefault(key, (area, value))
    assert not clashes, "use a distinct msgid (or the same translation):\n" + "\n".join(clashes)
