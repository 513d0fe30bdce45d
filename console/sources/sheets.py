"""Read and write task tables as CSV or XLSX: rows of cell texts with their spreadsheet row numbers."""

from __future__ import annotations

import codecs
import csv
import io
import os
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from ..messages import say, sized
from ..userfiles import NotRegularFile, open_regular
from .problems import SourceProblem

MAX_TABLE_BYTES = 16 * 1024 * 1024
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_ROWS = 100_000
MAX_COLUMNS = 64
CELL_MAX = 20_000
FORMATS = ("csv", "xlsx")
Row = tuple[int, list[str]]  # (row number as a spreadsheet shows it, cell texts)


def table_format(path: Path) -> str:
    """Return "csv" or "xlsx" from the file name; SourceProblem for anything else."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    if suffix == ".xls":
        raise SourceProblem(say("sources.table_xls", name=path.name))
    raise SourceProblem(say("sources.table_not_table", name=path.name))


def read_rows(path: Path) -> list[Row]:
    """Return the non-blank rows of the table's first sheet; SourceProblem when it cannot be read."""
    kind = table_format(path)
    try:
        file = open_regular(path)  # a FIFO or a device named .csv must not hang the request
    except NotRegularFile as exc:
        raise SourceProblem(say("sources.table_not_file", path=str(path), kind=exc.kind)) from None
    except OSError as exc:
        raise SourceProblem(say("sources.table_unreadable", path=str(path), reason=exc.strerror or str(exc))) from None
    with file:
        size = os.fstat(file.fileno()).st_size
        if size > MAX_TABLE_BYTES:
            raise SourceProblem(say("sources.table_too_big", size=sized(size), limit=sized(MAX_TABLE_BYTES)))
        return _kept(_csv_rows(file) if kind == "csv" else _xlsx_rows(file, path.name))


def _kept(rows: Iterator[Row]) -> list[Row]:
    """Return the non-blank rows, cut to MAX_COLUMNS and CELL_MAX; SourceProblem past MAX_ROWS (read lazily)."""
    kept: list[Row] = []
    for number, cells in rows:
        if len(kept) > MAX_ROWS:
            raise SourceProblem(say("sources.table_too_many_rows", limit=MAX_ROWS))
        if len(cells) > MAX_COLUMNS and any(cells[MAX_COLUMNS:]):
            raise SourceProblem(say("sources.table_too_many_columns", row=number, limit=MAX_COLUMNS))
        texts = [text[:CELL_MAX] for text in cells[:MAX_COLUMNS]]
        if any(texts):
            kept.append((number, texts))
    return kept


def _csv_rows(file: BinaryIO) -> Iterator[Row]:
    data = file.read(MAX_TABLE_BYTES + 1)  # it may have grown since fstat()
    if len(data) > MAX_TABLE_BYTES:
        raise SourceProblem(say("sources.table_grew", limit=sized(MAX_TABLE_BYTES)))
    text = _decoded(data)
    sample = text[:8192]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        for number, cells in enumerate(reader, start=1):  # a record is a row, even with line breaks in a cell
            yield number, [cell.strip() for cell in cells]
    except csv.Error as exc:
        raise SourceProblem(say("sources.csv_unreadable", line=reader.line_num, reason=str(exc))) from None


def _decoded(data: bytes) -> str:
    """UTF-8 (BOM or not; Excel's "CSV UTF-8"), UTF-16 with a BOM, else GB18030 (Excel's CSV on Chinese Windows)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise SourceProblem(say("sources.csv_not_utf8")) from None


def _xlsx_rows(file: BinaryIO, name: str) -> Iterator[Row]:
    from openpyxl import load_workbook  # only tables need it: the server starts without the import

    try:
        _check_unpacked_size(file, name)
        file.seek(0)
        book = load_workbook(file, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise SourceProblem(say("sources.xlsx_unreadable", name=name, reason=str(exc))) from None
    try:
        sheet = book.worksheets[0]
        # Some writers store a wrong size (A1:A1) that read-only mode would trust; rows are
        # numbered from 1 with blank ones filled in, as the spreadsheet shows them.
        sheet.reset_dimensions()
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [cell_text(value) for value in values]
    finally:
        book.close()


def _check_unpacked_size(file: BinaryIO, name: str) -> None:
    """Refuse an .xlsx whose parts unpack to more than MAX_UNPACKED_BYTES (a zip bomb: openpyxl
    reads the shared strings whole, even in read-only mode)."""
    with zipfile.ZipFile(file) as archive:
        unpacked = sum(item.file_size for item in archive.infolist())
    if unpacked > MAX_UNPACKED_BYTES:
        raise SourceProblem(say("sources.xlsx_too_big", name=name, size=sized(unpacked),
                                limit=sized(MAX_UNPACKED_BYTES)))


def cell_text(value: Any) -> str:
    """Return a cell as text: whole numbers without `.0`, dates as ISO, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value).strip()


def write_csv(header: list[str], rows: Iterable[list[Any]]) -> bytes:
    """Return the table as UTF-8 CSV with a BOM (so Excel reads the Chinese headers right)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if cell is None else cell for cell in row])
    return codecs.BOM_UTF8 + buffer.getvalue().encode("utf-8")


def write_xlsx(header: list[str], rows: Iterable[list[Any]], widths: list[int] | None = None) -> bytes:
    """Return the table as an .xlsx workbook: a bold, frozen header row, then the rows."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "tasks"
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(list(row))
    sheet.freeze_panes = "A2"
    for index, width in enumerate(widths or [], start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = width
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
