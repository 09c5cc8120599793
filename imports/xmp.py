"""Read ImaLink's fields (rating, keywords, title, description, time taken, GPS) from an XMP sidecar or an
embedded XMP packet, and merge the four ImaLink edits back into a sidecar. exiv2 (pyexiv2) parses and writes.

exiv2 does the XML and RDF; this module decides which bytes may reach it: it transcodes UTF-16/32 to the UTF-8
exiv2 requires, bounds the size, refuses DTDs and namespace rebindings that would poison exiv2's process-wide
namespace table, and serialises every call to exiv2 behind one lock. No database, no files: bytes in, bytes out.
"""

from __future__ import annotations

import codecs
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyexiv2

from imports.media import OLDEST_PLAUSIBLE_YEAR

logger = logging.getLogger("imalink.xmp")

# Real sidecars are kilobytes (a Lightroom file with many masks a few MB). exiv2 holds about 35 bytes of
# memory per byte of a packet dense with properties, so this also bounds one parse to roughly half a GB.
MAX_XMP_BYTES = 16 * 1024 * 1024

# exiv2 and its XMP toolkit keep process-wide state: the toolkit starts itself on the first parse, and every
# parse registers the namespaces it meets in a global table (exiv2's README, "Thread safety", says neither is
# thread-safe). pyexiv2 adds a global error buffer that each call reads and clears. pyexiv2 2.16 happens not
# to release the GIL, which serialises calls today; this lock keeps that true whatever a later version does.
_EXIV2_LOCK = threading.Lock()

# pyexiv2 prints exiv2's warnings to stdout, and exiv2 also reports every failure that matters here (a
# malformed packet, a refused DTD) as an error, which pyexiv2 raises. Muting the warnings is process-wide.
pyexiv2.set_log_level(3)

_RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XMPMETA_NS = "adobe:ns:meta/"
_PACKET_HEADER = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_PACKET_FOOTER = '\n<?xpacket end="w"?>\n'
_EMPTY_SIDECAR = f'{_PACKET_HEADER}<x:xmpmeta xmlns:x="{_XMPMETA_NS}"></x:xmpmeta>{_PACKET_FOOTER}'
# exiv2 looks at the first 80 bytes to recognise XMP, and a shorter buffer is "an unknown image type".
_EXIV2_MIN_BYTES = 128

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose mark is a prefix of this one
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Without a byte order mark, the bytes of the first '<' give the encoding away (XML 1.0, appendix F).
_UNMARKED = (
    (b"<\0\0\0", "utf-32-le"),
    (b"\0\0\0<", "utf-32-be"),
    (b"<\0", "utf-16-le"),
    (b"\0<", "utf-16-be"),
)
_DTD = re.compile(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"<\?xml\s[^>]*\?>\s*")
_PACKET_ENCODING = re.compile(r"""\sencoding\s*=\s*(["'])[^"']*\1""")
_NAMESPACE_DECLARATION = re.compile(r"""xmlns:([^\s=/>"']+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CONTAINER = re.compile(r'type="(?:Alt|Bag|Seq|Struct)"')

# exiv2 0.28's built-in namespaces (properties.cpp, xmpNsInfo). A packet that binds one of these prefixes to
# another URI makes exiv2 register that binding over the built-in one for the rest of the process, so every
# later sidecar would be written with, say, xmp:Rating in the stranger's namespace. Such packets are refused.
_EXIV2_NAMESPACES = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "kipi": "http://www.digikam.org/ns/kipi/1.0/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "xmpBJ": "http://ns.adobe.com/xap/1.0/bj/",
    "xmpTPg": "http://ns.adobe.com/xap/1.0/t/pg/",
    "xmpDM": "http://ns.adobe.com/xmp/1.0/DynamicMedia/",
    "MicrosoftPhoto": "http://ns.microsoft.com/photo/1.0/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "pdf": "http://ns.adobe.com/pdf/1.3/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "crs": "http://ns.adobe.com/camera-raw-settings/1.0/",
    "crss": "http://ns.adobe.com/camera-raw-saved-settings/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "exifEX": "http://cipa.jp/exif/1.0/",
    "aux": "http://ns.adobe.com/exif/1.0/aux/",
    "iptc": "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/",
    "Iptc4xmpCore": "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/",
    "iptcExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
    "mediapro": "http://ns.iview-multimedia.com/mediapro/1.0/",
    "expressionmedia": "http://ns.microsoft.com/expressionmedia/1.0/",
    "MP": "http://ns.microsoft.com/photo/1.2/",
    "MPRI": "http://ns.microsoft.com/photo/1.2/t/RegionInfo#",
    "MPReg": "http://ns.microsoft.com/photo/1.2/t/Region#",
    "mwg-rs": "http://www.metadataworkinggroup.com/schemas/regions/",
    "mwg-kw": "http://www.metadataworkinggroup.com/schemas/keywords/",
    "video": "http://www.video/",
    "audio": "http://www.audio/",
    "dwc": "http://rs.tdwg.org/dwc/index.htm",
    "dcterms": "http://purl.org/dc/terms/",
    "acdsee": "http://ns.acdsee.com/iptc/1.0/",
    "GPano": "http://ns.google.com/photos/1.0/panorama/",
    "xmpG": "http://ns.adobe.com/xap/1.0/g/",
    "xmpGImg": "http://ns.adobe.com/xap/1.0/g/img/",
    "stDim": "http://ns.adobe.com/xap/1.0/sType/Dimensions#",
    "stFnt": "http://ns.adobe.com/xap/1.0/sType/Font#",
    "stEvt": "http://ns.adobe.com/xap/1.0/sType/ResourceEvent#",
    "stRef": "http://ns.adobe.com/xap/1.0/sType/ResourceRef#",
    "stVer": "http://ns.adobe.com/xap/1.0/sType/Version#",
    "stJob": "http://ns.adobe.com/xap/1.0/sType/Job#",
    "stArea": "http://ns.adobe.com/xmp/sType/Area#",
    "xmpidq": "http://ns.adobe.com/xmp/Identifier/qual/1.0/",
}

_RATING = "Xmp.xmp.Rating"
_SUBJECT = "Xmp.dc.subject"
_TITLE = "Xmp.dc.title"
_DESCRIPTION = "Xmp.dc.description"
_HIERARCHY = "Xmp.lr.hierarchicalSubject"
_X_DEFAULT = 'lang="x-default"'
# The Metadata Working Group's order, and imports/media.py's: xmp:CreateDate is when the picture was
# digitised (a scan's date), photoshop:DateCreated when it was taken.
_DATE_KEYS = ("Xmp.exif.DateTimeOriginal", "Xmp.photoshop.DateCreated", "Xmp.xmp.CreateDate")
_EXIF_STYLE_DATE = re.compile(r"^(\d{4}):(\d{2}):(\d{2})")
_GPS_COORDINATE = re.compile(r"^([+-]?)(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?(?:,(\d+(?:\.\d+)?))?\s*([A-Za-z]?)$")


class XmpUnreadable(ValueError):
    """XMP that ImaLink will not read or merge into; str(exc) is a sentence that says why."""


@dataclass(frozen=True)
class XmpFields:
    """The fields ImaLink reads from XMP. An absent or unusable value is None, "" or ().

    rating is xmp:Rating, 0 to 5. Lightroom's -1 ("rejected") reads as rating 0 with rejected=True, since
    ImaLink has no rejected state; merge_xmp keeps a -1 when asked to write 0.
    keywords are dc:subject followed by the leaf name of each lr:hierarchicalSubject path ("Places|Oslo"
    gives "Oslo") not already among them; the paths themselves are hierarchical_keywords.
    title and description are the x-default entries of dc:title and dc:description (else their first).
    taken_at comes from exif:DateTimeOriginal, else photoshop:DateCreated, else xmp:CreateDate. It is always
    timezone-aware: a value without an offset is read as UTC, as imports/media.py reads EXIF times.
    gps_latitude and gps_longitude are decimal degrees (south and west negative), both or neither.
    """

    rating: int | None = None
    rejected: bool = False
    keywords: tuple[str, ...] = ()
    hierarchical_keywords: tuple[str, ...] = ()
    title: str = ""
    description: str = ""
    taken_at: datetime | None = None
    gps_latitude: float | None = None
    gps_longitude: float | None = None


def read_xmp(data: bytes) -> XmpFields:
    """The ImaLink fields of an XMP sidecar's bytes or an embedded packet (Pillow's im.info["xmp"]).

    Empty input, or only whitespace, is a sidecar with nothing in it and gives XmpFields(). Raises
    XmpUnreadable for anything exiv2 cannot read as XMP, or that this module refuses to hand it.
    """
    packet = _exiv2_packet(data)
    if packet is None:
        return XmpFields()
    with _exiv2_sidecar(packet) as sidecar:
        values = sidecar.read_xmp()
    return _fields(values)


def read_xmp_properties(data: bytes) -> dict[str, Any]:
    """Every property of an XMP packet as exiv2 names them (`Xmp.dc.title`, `Xmp.Container.Directory[1]/...`),
    with the same decoding, refusals and lock as read_xmp: for readers of fields ImaLink does not keep."""
    packet = _exiv2_packet(data)
    if packet is None:
        return {}
    with _exiv2_sidecar(packet) as sidecar:
        return sidecar.read_xmp()


def merge_xmp(existing: bytes | None, *, rating: int, keywords: Sequence[str], title: str, description: str) -> bytes:
    """A UTF-8 sidecar: `existing` with ImaLink's four fields set, or a new one when existing is None or empty.

    Sets xmp:Rating, dc:subject (a bag of the keywords, in their order, without repeats), and the x-default
    entries of dc:title and dc:description; other languages of a title are kept. An empty title or description
    removes that property, an empty keyword list removes dc:subject. Rating 0 over a Lightroom -1 keeps the -1.
    lr:hierarchicalSubject is never added to, but a path whose leaf is no longer a keyword is dropped from it:
    read_xmp counts those leaves as keywords, and Lightroom rebuilds keywords from the paths, so leaving them
    would bring a removed keyword back. Every other property and namespace is kept as exiv2 read it.
    Raises ValueError for values XMP cannot hold, XmpUnreadable for an existing sidecar it cannot read.
    """
    if isinstance(rating, bool) or not isinstance(rating, int) or not 0 <= rating <= 5:
        raise ValueError(f"rating must be an integer from 0 to 5, not {rating!r}.")
    if isinstance(keywords, str):
        raise TypeError("keywords must be a sequence of strings, not one string.")
    for keyword in keywords:
        _check_text("keyword", keyword)
    _check_text("title", title)
    _check_text("description", description)
    wanted = _unique(keywords)
    title, description = title.strip(), description.strip()
    for keyword in wanted:
        if keyword.startswith("type="):
            # exiv2 reads a text value that starts with "type=" as an array or struct marker.
            raise ValueError(f"keyword {keyword!r} starts with 'type=', which exiv2 cannot write as text.")
    packet = _exiv2_packet(existing) if existing is not None else None
    with _exiv2_sidecar(packet or _encode(_EMPTY_SIDECAR)) as sidecar:
        current = sidecar.read_xmp()
        changes = _changes(current, rating=rating, keywords=wanted, title=title, description=description)
        # exiv2 keeps Exif and IPTC copies of a sidecar's XMP and converts them back on every write, which
        # would rewrite exif:GPSLatitude in its own format and bring back a removed dc:subject or dc:title.
        # The copies are nothing of the file's own, so they go before anything is written.
        sidecar.clear_exif()
        sidecar.clear_iptc()
        sidecar.modify_xmp(changes)
        return sidecar.get_bytes()


class _Sidecar(pyexiv2.ImageData):
    """pyexiv2.ImageData that frees its copy of the bytes when exiv2 refuses them.

    pyexiv2 2.16 copies the data into a C buffer before parsing and frees it only in close(), which a failed
    constructor never reaches: without this, every rejected packet would leak its size in memory.
    """

    def __init__(self, data: bytes):
        try:
            super().__init__(data)
        except BaseException:
            buffer = getattr(self, "buffer", None)
            if buffer is not None:
                buffer.destroy()
            raise


@contextmanager
def _exiv2_sidecar(packet: bytes) -> Iterator[_Sidecar]:
    """The packet opened in exiv2 under the module's lock; exiv2's errors come out as XmpUnreadable."""
    with _EXIV2_LOCK:
        try:
            sidecar = _Sidecar(packet)
        except RuntimeError as exc:
            raise _unreadable("exiv2 cannot read this XMP", exc) from exc
        try:
            try:
                yield sidecar
            finally:
                sidecar.close()
        except RuntimeError as exc:
            raise _unreadable("exiv2 failed on this XMP", exc) from exc


def _unreadable(what: str, exc: RuntimeError) -> XmpUnreadable:
    reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    logger.debug("%s: %s", what, reason)
    return XmpUnreadable(f"{what}: {reason}.")


def _exiv2_packet(data: bytes) -> bytes | None:
    """The UTF-8 bytes to hand exiv2 for `data`, None for a sidecar with no text, or XmpUnreadable.

    exiv2 reads only UTF-8 XMP (it calls a UTF-16 sidecar "an unknown image type"), and recognises XMP only
    when it starts with <?xpacket or <x:xmpmeta, so the text is decoded, its encoding declarations dropped,
    and a bare <rdf:RDF> given a packet wrapper. DTDs are refused before exiv2 sees them (exiv2 0.28 refuses
    them too, but nothing here depends on that): XMP has no use for them, and they are how entity attacks
    (billion laughs, external entities) begin.
    """
    if len(data) > MAX_XMP_BYTES:
        raise XmpUnreadable(f"the XMP is {len(data)} bytes, more than the {MAX_XMP_BYTES} ImaLink reads.")
    text = _decode(bytes(data)).lstrip("\ufeff \t\r\n").rstrip("\0 \t\r\n")
    if not text:
        return None
    if "\0" in text:
        raise XmpUnreadable("the XMP holds NUL characters, so it is not text in the encoding it appears to be.")
    if _DTD.search(text):
        raise XmpUnreadable("the XMP has a DOCTYPE or ENTITY declaration, which XMP never needs; it is refused.")
    if _RDF_NS not in text and _XMPMETA_NS not in text:
        raise XmpUnreadable("the data is not XMP: it declares neither the RDF nor the x:xmpmeta namespace.")
    _check_namespaces(text)
    declaration = _XML_DECLARATION.match(text)
    if declaration:
        text = text[declaration.end() :]
    if text.startswith("<?xpacket"):
        end = text.find("?>")
        if end < 0:
            raise XmpUnreadable("the XMP's <?xpacket instruction is never closed.")
        text = _PACKET_ENCODING.sub("", text[:end]) + text[end:]
    else:
        text = _PACKET_HEADER + text + _PACKET_FOOTER
    return _encode(text)


def _decode(data: bytes) -> str:
    for mark, encoding in _BOMS:
        if data.startswith(mark):
            return _decode_as(data[len(mark) :], encoding)
    for start, encoding in _UNMARKED:
        if data.startswith(start):
            return _decode_as(data, encoding)
    return _decode_as(data, "utf-8")


def _decode_as(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise XmpUnreadable(
            f"the XMP is not valid {encoding.upper()} text (bad bytes at offset {exc.start}); "
            "XMP must be UTF-8, UTF-16 or UTF-32."
        ) from exc


def _encode(text: str) -> bytes:
    packet = text.encode("utf-8")
    return packet + b"\n" * (_EXIV2_MIN_BYTES - len(packet)) if len(packet) < _EXIV2_MIN_BYTES else packet


def _check_namespaces(text: str) -> None:
    for prefix, double_quoted, single_quoted in _NAMESPACE_DECLARATION.findall(text):
        builtin = _EXIV2_NAMESPACES.get(prefix)
        uri = double_quoted or single_quoted
        if builtin is not None and _with_slash(uri) != _with_slash(builtin):
            raise XmpUnreadable(
                f"the XMP binds the prefix {prefix!r} to {uri!r}, where exiv2 knows it as {builtin!r}; "
                "exiv2 would then write that namespace wrongly in every later sidecar, so it is refused."
            )


def _with_slash(uri: str) -> str:
    """The URI as exiv2 registers it: exiv2 adds a missing final slash, so both spellings are one namespace."""
    return uri if uri.endswith(("/", "#")) else uri + "/"


def _check_text(field: str, value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, not {type(value).__name__}.")
    bad = _NOT_XML_CHAR.search(value)
    if bad:
        raise ValueError(f"{field} {value!r} holds U+{ord(bad.group()):04X}, a character XML cannot carry.")


def _changes(current: dict[str, Any], *, rating: int, keywords: tuple[str, ...], title: str, description: str):
    """pyexiv2's modify_xmp dict for the merge: None removes a key, the others are set in this order."""
    keep_rejection = rating == 0 and _rating(current.get(_RATING))[1]
    owned = (_SUBJECT, _TITLE, _DESCRIPTION) if keep_rejection else (_RATING, _SUBJECT, _TITLE, _DESCRIPTION)
    changes: dict[str, Any] = {key: None for key in current if _is_under(key, owned)}
    if not keep_rejection:
        changes[_RATING] = str(rating)
    changes.update(_bag(_SUBJECT, keywords))
    changes[_TITLE] = _lang_alt_with(current.get(_TITLE), title)
    changes[_DESCRIPTION] = _lang_alt_with(current.get(_DESCRIPTION), description)
    paths = current.get(_HIERARCHY)
    if isinstance(paths, list):
        kept = [path for path in paths if _leaf(path) is None or _leaf(path) in keywords]
        # A kept path that starts with "type=" could not be written back as text (see merge_xmp).
        if len(kept) < len(paths) and not any(path.startswith("type=") for path in kept):
            changes.update({key: None for key in current if _is_under(key, (_HIERARCHY,))})
            changes.update(_bag(_HIERARCHY, tuple(kept)))
    return changes


def _is_under(key: str, properties: Sequence[str]) -> bool:
    """Whether key is one of properties, or an item or field inside one (Xmp.dc.subject[1], …/ns:field)."""
    return any(key == name or key.startswith((name + "[", name + "/")) for name in properties)


def _bag(key: str, items: tuple[str, ...]) -> dict[str, Any]:
    # pyexiv2 writes a Python list as an rdf:Seq; dc:subject and lr:hierarchicalSubject are bags, which
    # exiv2 builds from a container marker followed by numbered items.
    if not items:
        return {key: None}
    return {key: 'type="Bag"', **{f"{key}[{number}]": item for number, item in enumerate(items, start=1)}}


def _lang_alt_with(value: Any, text: str) -> dict[str, str] | None:
    if not text:
        return None
    others = {lang: item for lang, item in value.items() if lang != _X_DEFAULT} if isinstance(value, dict) else {}
    return {_X_DEFAULT: text, **others}


def _fields(values: dict[str, Any]) -> XmpFields:
    rating, rejected = _rating(values.get(_RATING))
    subject = _texts(values.get(_SUBJECT))
    paths = _texts(values.get(_HIERARCHY))
    leaves = tuple(leaf for leaf in map(_leaf, paths) if leaf)
    latitude, longitude = _gps(values)
    return XmpFields(
        rating=rating,
        rejected=rejected,
        keywords=_unique(subject + leaves),
        hierarchical_keywords=paths,
        title=_lang_alt(values.get(_TITLE)),
        description=_lang_alt(values.get(_DESCRIPTION)),
        taken_at=_taken_at(values),
        gps_latitude=latitude,
        gps_longitude=longitude,
    )


def _scalar(value: Any) -> str | None:
    """One text from a pyexiv2 value: the first item when a writer put an array where a scalar belongs."""
    if isinstance(value, dict):
        value = next(iter(value.values()), None)
    elif isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, str) or _CONTAINER.fullmatch(value.strip()):
        return None
    return value.strip().rstrip("\0")


def _texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, dict):
        value = list(value.values())
    items = value if isinstance(value, list) else [value]
    return _unique(item for item in items if isinstance(item, str) and not _CONTAINER.fullmatch(item.strip()))


def _unique(items) -> tuple[str, ...]:
    """The stripped, non-empty items in their first order, without repeats."""
    return tuple(dict.fromkeys(stripped for item in items if (stripped := item.strip())))


def _leaf(path: str) -> str | None:
    parts = [part.strip() for part in path.split("|") if part.strip()]
    return parts[-1] if parts else None


def _lang_alt(value: Any) -> str:
    if isinstance(value, dict) and _X_DEFAULT in value:
        value = value[_X_DEFAULT]
    return _scalar(value) or ""


def _rating(value: Any) -> tuple[int | None, bool]:
    try:
        number = float(_scalar(value) or "")
    except ValueError:
        return None, False
    if number == -1:
        return 0, True
    if number.is_integer() and 0 <= number <= 5:
        return int(number), False
    return None, False


def _taken_at(values: dict[str, Any]) -> datetime | None:
    for key in _DATE_KEYS:
        moment = _xmp_datetime(values.get(key))
        if moment is not None:
            return moment
    return None


def _xmp_datetime(value: Any) -> datetime | None:
    """An XMP date (ISO 8601, from "YYYY-MM-DD" up to fractions and an offset), or EXIF's "YYYY:MM:DD hh:mm:ss"."""
    text = _scalar(value)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(_EXIF_STYLE_DATE.sub(r"\1-\2-\3", text, count=1))
    except ValueError:
        return None
    if moment.year < OLDEST_PLAUSIBLE_YEAR:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _gps(values: dict[str, Any]) -> tuple[float | None, float | None]:
    """Decimal degrees from exif:GPSLatitude/Longitude, or (None, None) when either is absent or unusable.

    As in imports/media.py, 0,0 counts as absent: it is what cameras write when they have no fix.
    """
    latitude = _coordinate(values.get("Xmp.exif.GPSLatitude"), values.get("Xmp.exif.GPSLatitudeRef"), "NS", 90)
    longitude = _coordinate(values.get("Xmp.exif.GPSLongitude"), values.get("Xmp.exif.GPSLongitudeRef"), "EW", 180)
    if latitude is None or longitude is None or (latitude == 0 and longitude == 0):
        return None, None
    return latitude, longitude


def _coordinate(value: Any, ref: Any, directions: str, limit: float) -> float | None:
    """One coordinate in XMP's "DDD,MM,SSk" or "DDD,MM.mmk" form (k the direction), or plain decimal degrees.

    Without a direction letter in the value, a sign or the exif:GPS…Ref property (written by exiv2, not part
    of the XMP standard) gives the hemisphere.
    """
    match = _GPS_COORDINATE.match(_scalar(value) or "")
    if not match:
        return None
    sign, degrees, minutes, seconds, letter = match.groups()
    if minutes is not None and (float(minutes) >= 60 or (seconds is not None and float(seconds) >= 60)):
        return None
    number = float(degrees) + float(minutes or 0) / 60 + float(seconds or 0) / 3600
    if letter and sign:
        return None
    direction = (letter or ("" if sign else (_scalar(ref) or "")[:1])).upper()
    if direction and direction not in directions:
        return None
    if sign == "-" or direction == directions[1]:
        number = -number
    return number if abs(number) <= limit else None
