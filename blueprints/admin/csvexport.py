"""CSV exports of the console: streamed, UTF-8 with a BOM so that Excel in Japan reads it right,
and no cell a spreadsheet would run as a formula (accounts.csvsafe)."""
import io

from flask import Response, stream_with_context

from accounts.csvsafe import SafeWriter

BOM = "\ufeff"


def stream_csv(filename: str, header: list[str], rows) -> Response:
    """A streamed CSV response: the header row, then ``rows`` as they come (never all in memory)."""

    def generate():
        buf = io.StringIO()
        writer = SafeWriter(buf, lineterminator="\r\n")
        writer.writerow(header)
        yield BOM + buf.getvalue()
        for row in rows:
            buf.seek(0)
            buf.truncate()
            writer.writerow(row)
            yield buf.getvalue()

    response = Response(stream_with_context(generate()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    return response
