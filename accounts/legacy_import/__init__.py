"""The legacy import (SPEC 4): the guide's row rules as pure functions, a streaming CSV reader and a
batched bulk writer below the ORM, fast enough for a million rows in under a minute (SPEC 9).

How a run goes:

1. The file's encoding is decided (BOM -> UTF-8, else strict UTF-8, else CP932) by decoding it
   once; a file that is neither stops the run before anything is written.
2. A first streaming pass checks the header and collects the contracts (ECID -> parent, name),
   so that a child row may come before its parent's first row. Memory: one entry per contract.
3. Contracts are created or matched by ECID in their own transaction (idempotent).
4. A second streaming pass validates each row and writes the users in batches. Each batch is ONE
   transaction holding the users, their legacy records and the contract counters, so a kill leaves
   whole batches only and a re-run resumes: rows already migrated are reported ``skipped``.

The file's rows are never held in memory. Login-ID conflicts and "already migrated" pairs are
looked up per batch in the database (small files: the unique indexes answer, memory stays flat)
or, for big files, in sets loaded from the database and kept current (memory grows with the number
of users, ~290 bytes each). A bulk load of many new rows suspends the B-tree and search indexes and
rebuilds them once at the end (SPEC 9); a run killed meanwhile is repaired by the next run.

Modules, in the order a run uses them: ``rules`` (a row's rules, pure), ``source`` (reading the
file), ``contracts``, ``sql`` (helpers), ``writer`` (lookups and inserts), ``indexes`` (suspend and
rebuild), ``import_run`` (the passes, decisions, report, dry run; its tunables BATCH_SIZE and
SUSPEND_INDEX_MIN_ROWS), ``cli`` (exit codes and everything printed). This module re-exports what
callers outside the package use."""
from .cli import (  # noqa: F401
    command,
    echo_rejected,
    format_summary,
)
from .contracts import (  # noqa: F401
    FileContract,
    ResolvedContract,
    apply_contracts,
    collect_contracts,
    resolve_contracts,
)
from .import_run import (  # noqa: F401
    MAX_ERRORS_SHOWN,
    Batch,
    Candidate,
    ImportRun,
    LegacyImport,
    Summary,
    run,
)
from .indexes import (  # noqa: F401
    BULK_TABLES,
    PG_INDEX_BUILDERS,
    PG_INDEX_MEMORY,
    bulk_indexes_suspended,
    create_indexes,
    recover_interrupted_run,
)
from .rules import (  # noqa: F401
    DEFAULT_PHONE,
    MAX_EMAIL,
    MAX_PHONE,
    MAX_TEXT,
    MIGRATED,
    OPTIONAL_COLUMNS,
    REJECTED,
    REPORT_COLUMNS,
    REQUIRED_COLUMNS,
    SKIPPED,
    LegacyRow,
    ReportRow,
    RowError,
    apply_phone_rule,
    assign_login_id,
    cached_ecid,
    ecid_field,
    is_valid_email,
    normalize_ecid,
    parse_is_admin,
    parse_row,
    parse_values,
    phone_digits,
    phone_for,
)
from .source import (  # noqa: F401
    Source,
    UnreadableFile,
    check_report_path,
    detect_encoding,
    open_source,
)
from .sql import (  # noqa: F401
    Existing,
    db_time,
    in_chunks,
    placeholder,
)
from .writer import (  # noqa: F401
    LEGACY_COLUMNS,
    USER_COLUMNS,
    DatabaseLookups,
    MemoryLookups,
    Writer,
    WriterThread,
)
