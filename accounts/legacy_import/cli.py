"""The command's side of an import: exit codes 0/1/2 and the text it prints. The only module
of the package that prints."""
from __future__ import annotations

import sys

import click

from .import_run import LegacyImport, Summary, run
from .rules import MIGRATED
from .source import UnreadableFile


def command(csv_path, dry_run: bool = False, report_path=None, kind=None) -> int:
    """Run an import from the command line: 0 processed, 1 unreadable (nothing written)."""
    kind = kind or LegacyImport()
    try:
        summary = run(csv_path, dry_run=dry_run, report_path=report_path,
                      progress_factory=progress_factory_for_terminal(), kind=kind)
    except UnreadableFile as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except Exception as exc:  # a database failure mid-run: whole batches only were written
        click.echo(f"error: the import stopped: {exc.__class__.__name__}: {exc}. Batches written "
                   "so far are complete; run the same command again to resume.", err=True)
        return 1
    echo_rejected(summary.errors, summary.rejected, report_path)
    click.echo(format_summary(summary, dry_run, kind.verb))
    return 0


def echo_rejected(shown: list[str], rejected: int, report_path) -> None:
    """The first rejected rows (``file:line: reason``) on standard error, and how many more."""
    for line in shown:
        click.echo(line, err=True)
    if rejected > len(shown):
        more = rejected - len(shown)
        click.echo(f"... and {more:,} more rejected rows" + (f", see {report_path}" if report_path else
                   " (use --report to list them all)"), err=True)


def format_summary(s: Summary, dry_run: bool = False, verb: str = MIGRATED) -> str:
    head = "dry run, nothing written: " if dry_run else ""
    rate = s.rows / s.seconds_total if s.seconds_total else 0.0
    changes = (f"login IDs changed: {s.login_ids_changed:,}; " if verb == MIGRATED
               else f"with a password (first login done): {s.with_password:,}; ")
    lines = [
        f"{head}{s.rows:,} rows ({s.encoding}): {s.migrated:,} {verb}, {s.skipped:,} skipped, "
        f"{s.rejected:,} rejected",
        f"{changes}phones changed: {s.phones_changed:,}; "
        f"contracts created: {s.contracts_created:,}",
        f"time: {s.seconds_total:.1f} s total, {s.seconds_load:.1f} s load"
        + (f", {s.seconds_indexes:.1f} s indexes, {s.seconds_search:.1f} s search index"
           if s.index_suspended else "")
        + (f", {s.seconds_statistics:.1f} s statistics" if s.seconds_statistics else "")
        + f" ({rate:,.0f} rows/s)",
    ]
    if s.restored:
        lines.insert(0, "an earlier import was interrupted; restored: " + ", ".join(s.restored))
    return "\n".join(lines)


def progress_factory_for_terminal():
    """A progress bar on a terminal; a line every 10% otherwise (logs stay readable)."""
    if sys.stderr.isatty():
        return lambda total: _TerminalProgress(total)
    return lambda total: _PeriodicProgress(total)


class _TerminalProgress:
    """click's progress bar, and a line for what comes after the rows."""

    def __init__(self, total):
        self.bar = click.progressbar(length=total, label="importing", file=sys.stderr,
                                     show_pos=True, show_eta=True)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def update(self, n):
        self.bar.update(n)

    def phase(self, text):
        click.echo("\n" + text, err=True)


class _PeriodicProgress:
    def __init__(self, total):
        self.total = total
        self.done = 0
        self.next_at = max(total // 10, 100000)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        self.done += n
        if self.done >= self.next_at and self.done < self.total:
            click.echo(f"... {self.done:,} of {self.total:,} rows", err=True)
            self.next_at += max(self.total // 10, 100000)

    def phase(self, text):
        click.echo(text, err=True)

