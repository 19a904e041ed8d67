"""Console area 「一括修正」 (bulk corrections by CSV, SPEC 14): template, upload, paged preview,
apply in time-boxed steps, CSV report. The rules live in accounts.bulk_corrections and
accounts.console; an upload belongs to the principal who made it (anyone else gets 404).
"""
import shutil
import tempfile

from flask import abort, current_app, make_response, redirect, request, url_for
from flask_babel import lazy_gettext as _l

from accounts import bulk_corrections as bulk
from accounts import console, fields, scope
from accounts.clock import format_jst
from blueprints.web import client_ip, is_htmx, render

from . import bp, nav_item
from .csvexport import stream_csv
from .guard import console_required, principal
from .users import ERRORS as FIELD_ERRORS
from .users import FIELD_LABELS

nav_item("admin.bulk_page", _l("Bulk corrections"), scope.EDIT, order=15)

FILE_ERRORS = {
    "no_file": _l("Choose a CSV file to upload."),
    "not_csv": _l("This file cannot be read as CSV. Save it as CSV (comma separated) in UTF-8 or "
                  "CP932 (Shift_JIS) and upload it again."),
    "empty": _l("The file is empty."),
    "no_rows": _l("The file has a header but no rows."),
    "too_large": _l("The file is larger than %(limit_mb)d MB. Split it into smaller files."),
    "too_many_rows": _l("The file has more than %(limit)d rows. Split it into smaller files."),
    "no_login_id": _l("The header has no %(column)s column. The first row must name the columns, "
                      "%(column)s among them."),
    "unknown_columns": _l("Unknown column(s) in the header: %(columns)s. Allowed columns: %(allowed)s."),
    "duplicate_column": _l("The column %(column)s appears twice in the header."),
    "nothing_to_correct": _l("The file has no column to correct: add at least one of %(columns)s."),
}

CELL_ERRORS = {
    **FIELD_ERRORS,
    "not_found": _l("No user with this login ID was found."),
    "duplicate": _l("Duplicate of line %(line)d (the first row for a user counts)."),
    "portal_format": _l("Enter business or sdpf, or leave it blank."),
    "portal_ambiguous": _l("This login ID exists in both portals: enter business or sdpf in the "
                           "portal column."),
    "duplicate_new_login_id": _l("Line %(line)d already changes a login ID to this value."),
    "too_many_fields": _l("The row has %(count)d fields, the header %(header)d."),
}

STATUS_LABELS = {
    bulk.CHANGE: _l("Will change"),
    bulk.UNCHANGED: _l("Unchanged"),
    bulk.ERROR: _l("Error"),
}

RESULT_LABELS = {
    bulk.APPLIED: _l("Correction saved"),
    bulk.STALE: _l("Not applied: the user was changed after the preview. Upload the file again to "
                   "see the current values."),
    bulk.REFUSED: _l("Not applied: %(reason)s"),
    bulk.GONE: _l("Not applied: the user is no longer found."),
}

SHOW_LABELS = {
    "all": _l("All rows"),
    bulk.CHANGE: _l("Will change"),
    bulk.UNCHANGED: _l("Unchanged"),
    bulk.ERROR: _l("Errors"),
    "not_applied": _l("Not applied"),
}

COLUMN_LABELS = {
    "new_email": FIELD_LABELS["email"],
    "new_login_id": _l("New login ID"),
    "name": FIELD_LABELS["name"],
    "phone": FIELD_LABELS["phone"],
    "login_id": FIELD_LABELS["login_id"],
    "portal": _l("Portal"),
    bulk.ROW: _l("Row"),
}


def _upload_or_404(upload_id):
    try:
        return bulk.get_upload(principal(), upload_id)
    except bulk.NotFound:
        abort(404)


def cell_message(error: list) -> str:
    """The message of a cell's error ``[code, arguments...]`` in the reader's language."""
    code, *args = error
    message = CELL_ERRORS.get(code)
    if message is None:
        return code
    if code in ("duplicate", "duplicate_new_login_id"):
        return message % {"line": args[0]}
    if code == "too_many_fields":
        return message % {"count": args[0], "header": args[1]}
    return str(message)


def result_message(row) -> str:
    if row.result is None:
        return ""
    if row.result == bulk.REFUSED:
        field, _, code = (row.result_detail or "").partition(":")
        return RESULT_LABELS[bulk.REFUSED] % {
            "reason": f"{FIELD_LABELS.get(field, field)}: {CELL_ERRORS.get(code, code)}"}
    return str(RESULT_LABELS[row.result])


def _display(row) -> dict:
    """What the preview shows of a row: per field the current and the new value, changed or not,
    and the cell's error."""
    errors = bulk.errors_of(row)
    changes = set(row.changes.split(",")) if row.changes else set()
    cells = []
    for column, field in bulk.FIELD_OF.items():
        given = getattr(row, column)
        error = errors.get(column)
        new = given
        if given is not None and not error:
            new = console.clean(field, given)
        cells.append({"column": column, "field": field, "current": getattr(row, f"current_{field}"),
                      "new": new, "changed": field in changes, "given": given is not None,
                      "error": cell_message(error) if error else None})
    return {
        "row": row, "cells": cells,
        "login_error": cell_message(errors["login_id"]) if "login_id" in errors else None,
        "portal_error": cell_message(errors["portal"]) if "portal" in errors else None,
        "row_error": cell_message(errors[bulk.ROW]) if bulk.ROW in errors else None,
        "result": result_message(row),
    }


def _int_arg(name):
    return fields.whole_number(request.args.get(name), max_digits=9)


def _page_context(upload, *, auto_continue=False):
    show = request.args.get("show", "all")
    if show not in bulk.SHOW:
        show = "all"
    page = bulk.rows_page(upload, show, after=_int_arg("after"), before=_int_arg("before"))
    return {
        "upload": upload, "show": show, "show_labels": SHOW_LABELS, "pager": page,
        "rows": [_display(r) for r in page.rows], "progress": bulk.progress(upload),
        "status_labels": STATUS_LABELS, "column_labels": COLUMN_LABELS,
        "auto_continue": auto_continue,
    }


@bp.get("/bulk")
@console_required(scope.EDIT)
def bulk_page():
    return render("admin/bulk.html", uploads=bulk.recent_uploads(principal()), error=None)


def _refused(code: str, args: dict | None = None, status: int = 422):
    message = FILE_ERRORS[code] % (args or {}) if args else str(FILE_ERRORS[code])
    return render("admin/bulk.html", status=status, uploads=bulk.recent_uploads(principal()),
                  error=message)


@bp.post("/bulk")
@console_required(scope.EDIT)
def bulk_upload():
    file = request.files.get("file")
    if file is None or not file.filename:
        return _refused("no_file")
    with tempfile.NamedTemporaryFile(prefix="bulk-", suffix=".csv") as tmp:
        # At most one byte over the limit is kept: enough to tell that the file is too large.
        shutil.copyfileobj(_limited(file.stream, bulk.MAX_BYTES + 1), tmp)
        tmp.flush()
        try:
            upload = bulk.preview(principal(), tmp.name, file.filename)
        except bulk.FileRefused as exc:
            return _refused(exc.code, exc.args_)
        except bulk.NotFound:
            abort(404)
    return redirect(url_for("admin.bulk_preview", upload_id=upload.id), 303)


class _limited:
    """A read-only view of a stream that ends after ``limit`` bytes."""

    def __init__(self, stream, limit):
        self.stream, self.left = stream, limit

    def read(self, size=-1):
        if self.left <= 0:
            return b""
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.stream.read(size)
        self.left -= len(data)
        return data


@bp.errorhandler(413)
def _too_large(exc):
    """A body over the application's MAX_CONTENT_LENGTH never reaches the view: the upload page
    still answers with its own message (nothing was read, nothing is written)."""
    who = principal()
    if request.endpoint == "admin.bulk_upload" and who is not None and scope.may(who, scope.EDIT):
        return _refused("too_large", {"limit_mb": bulk.MAX_BYTES // (1024 * 1024)}, status=413)
    return exc


@bp.get("/bulk/template.csv")
@console_required(scope.EDIT)
def bulk_template():
    return stream_csv("bulk-corrections-template.csv", list(bulk.TEMPLATE_COLUMNS), [])


@bp.get("/bulk/<int:upload_id>")
@console_required(scope.EDIT)
def bulk_preview(upload_id):
    upload = _upload_or_404(upload_id)
    return render("admin/bulk_preview.html", "admin/_bulk_rows.html", **_page_context(upload))


@bp.post("/bulk/<int:upload_id>/apply")
@console_required(scope.EDIT)
def bulk_apply(upload_id):
    upload = _upload_or_404(upload_id)
    progress = bulk.apply(principal(), upload.id, ip=client_ip(),
                          budget_seconds=current_app.config.get("BULK_APPLY_SECONDS", 10))
    page = url_for("admin.bulk_preview", upload_id=upload.id)
    if not is_htmx():
        return redirect(page, 303)
    if progress.done:
        response = make_response("", 200)
        response.headers["HX-Redirect"] = page
        return response
    # Not done within the time budget: the answer asks htmx to post again at once.
    upload = bulk.get_upload(principal(), upload.id)
    return render("admin/_bulk_status.html", **_page_context(upload, auto_continue=True))


@bp.get("/bulk/<int:upload_id>/report.csv")
@console_required(scope.EDIT)
def bulk_csv(upload_id):
    upload = _upload_or_404(upload_id)

    def rows():
        for row in bulk.all_rows(upload):
            errors = bulk.errors_of(row)
            new = {c["field"]: c["new"] for c in _display(row)["cells"]}
            yield [
                row.line, row.login_id, row.portal,
                row.current_email, new["email"], row.current_login_id, new["login_id"],
                row.current_name, new["name"], row.current_phone, new["phone"],
                row.status, row.changes,
                "; ".join(f"{COLUMN_LABELS.get(col, col)}: {cell_message(err)}"
                          for col, err in errors.items()),
                row.result or "", result_message(row),
                format_jst(row.applied_at, True) if row.applied_at else "",
            ]

    return stream_csv(f"bulk-corrections-{upload.id}.csv",
                      ["line", "login_id", "portal", "current_email", "new_email", "current_login_id",
                       "new_login_id", "current_name", "new_name", "current_phone", "new_phone",
                       "status", "changes", "errors", "result", "result_message", "applied_at_jst"],
                      rows())
