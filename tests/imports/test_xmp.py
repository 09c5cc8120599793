"""imports.xmp against the corpus card's XMP sidecars (MANIFEST.tsv), the XMP embedded in corpus images, sidecars
derived from the Lightroom one, and hostile packets.

No database: read_xmp and merge_xmp are bytes in, bytes out. pyexiv2 (and the exiv2 command, when installed)
read the merged sidecars back as independent checks.
"""

import codecs
import os
import random
import re
import shutil
import subprocess
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyexiv2
import pytest
from PIL import Image

from imports.xmp import _EXIV2_NAMESPACES, MAX_XMP_BYTES, XmpFields, XmpUnreadable, merge_xmp, read_xmp
from tests.conftest import CORPUS, require

pytestmark = pytest.mark.database_independent  # pure metadata code: the PostgreSQL pass leaves it out

CARD = Path(os.environ.get("IMALINK_CORPUS_CARD", CORPUS.parent / "corpus-card"))
UTC = timezone.utc
CEST = timezone(timedelta(hours=2))
OWNED = ("Xmp.xmp.Rating", "Xmp.dc.subject", "Xmp.dc.title", "Xmp.dc.description")
LIGHTROOM_LAST_ATTRIBUTE = 'xmp:CreateDate="2000-09-27T14:35:33+02:00"'
# Lightroom 4-style additions to the real Lightroom sidecar: develop settings, keywords with their hierarchy,
# a title in two languages, GPS in XMP's own "DDD,MM.mmk" form, a history of structs, and darktable's.
RICH_NAMESPACES = (
    ' xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" xmlns:lr="http://ns.adobe.com/lightroom/1.0/"'
    ' xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:darktable="http://darktable.sf.net/"'
)
RICH_ATTRIBUTES = (
    ' xmp:Rating="-1" xmp:Label="Red" crs:Exposure2012="+0.35" crs:WhiteBalance="As Shot"'
    ' exif:GPSLatitude="59,54.834N" exif:GPSLongitude="10,44,30.5E" xmpMM:DocumentID="xmp.did:1234"'
    ' darktable:xmp_version="5"'
)
RICH_ELEMENTS = """
   <dc:subject><rdf:Bag><rdf:li>Oslo</rdf:li><rdf:li>fjord</rdf:li></rdf:Bag></dc:subject>
   <dc:title><rdf:Alt>
     <rdf:li xml:lang="nb-NO">Fjorden</rdf:li><rdf:li xml:lang="x-default">The fjord</rdf:li>
   </rdf:Alt></dc:title>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">Evening</rdf:li></rdf:Alt></dc:description>
   <dc:creator><rdf:Seq><rdf:li>Ola Nordmann</rdf:li></rdf:Seq></dc:creator>
   <lr:hierarchicalSubject><rdf:Bag>
     <rdf:li>Places|Norway|Oslo</rdf:li><rdf:li>Nature|fjord</rdf:li>
   </rdf:Bag></lr:hierarchicalSubject>
   <xmpMM:History><rdf:Seq>
     <rdf:li stEvt:action="saved" stEvt:when="2019-06-07T10:00:00+02:00" stEvt:softwareAgent="Lightroom"/>
   </rdf:Seq></xmpMM:History>
   <darktable:history><rdf:Seq>
     <rdf:li darktable:operation="exposure" darktable:enabled="1" darktable:params="0000"/>
   </rdf:Seq></darktable:history>"""


@pytest.fixture
def card() -> Path:
    require(CARD.is_dir(), f"the shared corpus card at {CARD}")
    return CARD


@pytest.fixture
def lightroom(card) -> bytes:
    return (card / "sidecar" / "lightroom_utf16.xmp").read_bytes()


@pytest.fixture
def lightroom_text(lightroom) -> str:
    """The Lightroom sidecar as text (it is UTF-16 LE with a byte order mark)."""
    assert lightroom.startswith(codecs.BOM_UTF16_LE)
    return lightroom.decode("utf-16")


@pytest.fixture
def rich(lightroom_text) -> bytes:
    """The Lightroom sidecar with RICH_* added, still UTF-16 LE with its mark, CRLF line ends and padding."""
    return derived(lightroom_text, RICH_NAMESPACES + RICH_ATTRIBUTES, RICH_ELEMENTS).encode("utf-16")


def derived(lightroom_text: str, attributes: str = "", elements: str = "") -> str:
    """The Lightroom sidecar's text with attributes added to its rdf:Description and elements inside it."""
    assert lightroom_text.count(LIGHTROOM_LAST_ATTRIBUTE + ">") == 1
    return lightroom_text.replace(
        LIGHTROOM_LAST_ATTRIBUTE + ">", LIGHTROOM_LAST_ATTRIBUTE + attributes + ">" + elements.replace("\n", "\r\n")
    )


def exiv2_keys(data: bytes) -> dict:
    """What pyexiv2 itself reads from a UTF-8 packet: {key: value}."""
    sidecar = pyexiv2.ImageData(data)
    try:
        return sidecar.read_xmp()
    finally:
        sidecar.close()


def without(keys: dict, *owned: str) -> dict:
    return {key: value for key, value in keys.items() if not key.startswith(owned)}


def embedded_xmp(path: Path) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some corpus files have deliberately broken EXIF
        with Image.open(path) as im:
            return im.info["xmp"]


# Reading the corpus card's sidecars


def test_it_reads_the_lightroom_utf16_sidecar(lightroom):
    assert read_xmp(lightroom) == XmpFields(taken_at=datetime(2000, 9, 27, 14, 35, 33, tzinfo=CEST))


def test_exiv2_alone_cannot_read_the_utf16_sidecar(lightroom):
    """Why read_xmp transcodes: exiv2 recognises only UTF-8 XMP."""
    with pytest.raises(RuntimeError, match="unknown image type"):
        pyexiv2.ImageData(lightroom)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-be", "utf-16", "utf-32", "utf-32-be"])
def test_it_reads_the_lightroom_sidecar_in_every_unicode_encoding(lightroom_text, encoding):
    data = lightroom_text.encode(encoding)
    if encoding.endswith("-be"):
        data = codecs.BOM_UTF16_BE + data if "16" in encoding else codecs.BOM_UTF32_BE + data
    assert read_xmp(data).taken_at == datetime(2000, 9, 27, 14, 35, 33, tzinfo=CEST)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_it_reads_utf16_and_utf32_without_a_byte_order_mark(lightroom_text, encoding):
    assert read_xmp(lightroom_text.encode(encoding)).taken_at == datetime(2000, 9, 27, 14, 35, 33, tzinfo=CEST)


def test_it_reads_utf8_with_crlf_and_an_xml_declaration_that_says_utf16(lightroom_text):
    text = '<?xml version="1.0" encoding="UTF-16"?>\r\n' + lightroom_text
    assert "\r\n" in text
    assert read_xmp(text.encode("utf-8")).taken_at == datetime(2000, 9, 27, 14, 35, 33, tzinfo=CEST)


def test_it_reads_the_exiv2_sidecar_with_an_iso_array(card):
    data = (card / "sidecar" / "exiv2_iso_array.xmp").read_bytes()
    assert "<exif:ISOSpeedRatings>\n    <rdf:Seq>" in data.decode()  # the trap: an array where a number goes
    fields = read_xmp(data)
    # "40,14.0786450N" and "76,17.2284900W"; times without an offset are UTC, as in imports/media.py.
    assert fields.gps_latitude == pytest.approx(40 + 14.078645 / 60)
    assert fields.gps_longitude == pytest.approx(-(76 + 17.22849 / 60))
    assert fields.taken_at == datetime(2009, 11, 28, 13, 42, 39, tzinfo=UTC)
    # Its dc:description is 31 spaces, as the camera filled it; camera fields are not ImaLink's to read.
    assert (fields.rating, fields.keywords, fields.title, fields.description) == (None, (), "", "")


# Reading XMP embedded in the still-image corpus


def test_it_reads_keywords_and_hierarchy_embedded_by_exiftool(corpus):
    fields = read_xmp(embedded_xmp(corpus / "jpeg/orientation/portrait-orientation-6.jpg"))
    assert fields.keywords == ("Marie Curie", "Pierre Curie")
    assert fields.hierarchical_keywords == ("People|Marie Curie", "People|Pierre Curie")


def test_it_reads_an_embedded_time_with_its_offset(corpus):
    fields = read_xmp(embedded_xmp(corpus / "jpeg/camera/jolla.jpg"))  # 2014-09-21T16:00:56.000000+02:00
    assert fields.taken_at == datetime(2014, 9, 21, 16, 0, 56, tzinfo=CEST)


def test_it_reads_the_rating_a_phone_embeds(corpus):
    assert read_xmp(embedded_xmp(corpus / "jpeg/camera/20240403_105952.JPG")).rating == 0


@pytest.mark.parametrize(
    "name",
    [
        "bad/wrong_extension/wrong.heic",
        "jpeg/camera/20240427_234934.JPG",
        "jpeg/camera/20250112_171126.JPG",
        "jpeg/camera/DSCN0010.jpg",
        "jpeg/camera/canon_hdr_NO.jpg",
        "jpeg/dates/date-priority-test.jpg",
        "jpeg/dates/invalid-exif-without-x-resolution.jpg",
        "jpeg/exif_edge/exif_gps_typeerror.jpg",
        "jpeg/orientation/landscape_1.jpg",
        "png/png_with_exif_and_gps.png",
        "png/xmp_tags_orientation.png",
        "raw/pair/canon_eos_6d.dng",
    ],
)
def test_every_embedded_packet_in_the_corpus_reads_as_exiv2_reads_it(corpus, name):
    packet = embedded_xmp(corpus / name)
    fields = read_xmp(packet)
    keys = exiv2_keys(packet)
    assert fields.rating == (int(keys["Xmp.xmp.Rating"]) if "Xmp.xmp.Rating" in keys else None)
    assert fields.keywords == tuple(keys.get("Xmp.dc.subject", ()))
    # date-priority-test.jpg, for one, holds only exif:GPSTimeStamp and pdf:CreationDate: neither is a time taken.
    dated = {"Xmp.exif.DateTimeOriginal", "Xmp.photoshop.DateCreated", "Xmp.xmp.CreateDate"} & set(keys)
    assert (fields.taken_at is not None) == bool(dated)


# Reading: the individual fields


def test_it_reads_a_rich_sidecar(rich):
    assert read_xmp(rich) == XmpFields(
        rating=0,
        rejected=True,
        keywords=("Oslo", "fjord"),
        hierarchical_keywords=("Places|Norway|Oslo", "Nature|fjord"),
        title="The fjord",
        description="Evening",
        taken_at=datetime(2000, 9, 27, 14, 35, 33, tzinfo=CEST),
        gps_latitude=pytest.approx(59 + 54.834 / 60),
        gps_longitude=pytest.approx(10 + 44 / 60 + 30.5 / 3600),
    )


def test_keywords_add_the_leaves_of_paths_not_in_dc_subject(lightroom_text):
    elements = """
   <dc:subject><rdf:Bag><rdf:li>fjord</rdf:li><rdf:li> fjord </rdf:li><rdf:li></rdf:li></rdf:Bag></dc:subject>
   <lr:hierarchicalSubject><rdf:Bag>
     <rdf:li>Places|Norway|Oslo</rdf:li><rdf:li>Nature|fjord</rdf:li><rdf:li>|</rdf:li>
   </rdf:Bag></lr:hierarchicalSubject>"""
    fields = read_xmp(derived(lightroom_text, RICH_NAMESPACES, elements).encode("utf-16"))
    assert fields.keywords == ("fjord", "Oslo")
    assert fields.hierarchical_keywords == ("Places|Norway|Oslo", "Nature|fjord", "|")


def test_a_title_without_x_default_takes_the_first_language(lightroom_text):
    elements = '<dc:title><rdf:Alt><rdf:li xml:lang="nb-NO">Fjorden</rdf:li></rdf:Alt></dc:title>'
    assert read_xmp(derived(lightroom_text, "", elements).encode("utf-16")).title == "Fjorden"


@pytest.mark.parametrize(
    ("rating", "expected"),
    [
        ("5", (5, False)),
        ("0", (0, False)),
        ("-1", (0, True)),
        ("3.0", (3, False)),
        ("2.5", (None, False)),
        ("6", (None, False)),
        ("nan", (None, False)),
        ("four", (None, False)),
    ],
)
def test_ratings(lightroom_text, rating, expected):
    fields = read_xmp(derived(lightroom_text, f' xmp:Rating="{rating}"').encode("utf-16"))
    assert (fields.rating, fields.rejected) == expected


def test_a_rating_given_as_an_array_reads_its_first_item(lightroom_text):
    elements = "<xmp:Rating><rdf:Seq><rdf:li>4</rdf:li></rdf:Seq></xmp:Rating>"
    assert read_xmp(derived(lightroom_text, "", elements).encode("utf-16")).rating == 4


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        # exif:DateTimeOriginal wins over photoshop:DateCreated, which wins over xmp:CreateDate (Lightroom's).
        (
            ' xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:DateTimeOriginal="2001-02-03T04:05:06.5-05:00"'
            ' photoshop:DateCreated="1999-01-01"',
            datetime(2001, 2, 3, 4, 5, 6, 500000, tzinfo=timezone(timedelta(hours=-5))),
        ),
        (' photoshop:DateCreated="1975-06-01"', datetime(1975, 6, 1, tzinfo=UTC)),  # a scan's xmp:CreateDate
        (' photoshop:DateCreated="1975:06:01 12:30:00"', datetime(1975, 6, 1, 12, 30, tzinfo=UTC)),  # EXIF style
        (' photoshop:DateCreated="2001-02-03T04:05Z"', datetime(2001, 2, 3, 4, 5, tzinfo=UTC)),
        # Only a year, or an impossible date, is not a time taken: the next candidate is used.
        (' photoshop:DateCreated="1975"', datetime(2000, 9, 27, 14, 35, 33, tzinfo=CEST)),
        (' photoshop:DateCreated="1975-13-01"', datetime(2000, 9, 27, 14, 35, 33, tzinfo=CEST)),
        (' photoshop:DateCreated="1066-10-14"', datetime(2000, 9, 27, 14, 35, 33, tzinfo=CEST)),
    ],
)
def test_the_time_taken(lightroom_text, attributes, expected):
    assert read_xmp(derived(lightroom_text, attributes).encode("utf-16")).taken_at == expected


@pytest.mark.parametrize(
    ("latitude", "longitude", "expected"),
    [
        ("59,54.834N", "10,44.5W", (59.9139, -10.741667)),
        ("33,52,4.2S", "151,12,36E", (-33.867833, 151.21)),
        ("59.9139", "-10.7417", (59.9139, -10.7417)),
        ("59.9139N", "10.7417E", (59.9139, 10.7417)),
        ('59.9139" exif:GPSLatitudeRef="S', '10.7417" exif:GPSLongitudeRef="W', (-59.9139, -10.7417)),
        ("59,61.0N", "10,44.5E", (None, None)),  # 61 minutes
        ("91,0.0N", "10,44.5E", (None, None)),
        ("59,54.834E", "10,44.5E", (None, None)),  # a longitude's letter on a latitude
        ("-59,54.834N", "10,44.5E", (None, None)),  # a sign and a letter
        ("0,0.0N", "0,0.0E", (None, None)),  # what cameras write without a fix
        ("59,54.834N", "", (None, None)),
        ("north", "east", (None, None)),
    ],
)
def test_gps_coordinates(lightroom_text, latitude, longitude, expected):
    attributes = f' xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="{latitude}"'
    attributes += f' exif:GPSLongitude="{longitude}"'
    fields = read_xmp(derived(lightroom_text, attributes).encode("utf-16"))
    got = (fields.gps_latitude, fields.gps_longitude)
    assert got == ((None, None) if expected == (None, None) else pytest.approx(expected, abs=1e-6))


def test_a_bare_rdf_packet_and_an_old_xapmeta_one_read(lightroom_text):
    rdf = re.search(r"<rdf:RDF.*</rdf:RDF>", lightroom_text, re.DOTALL).group()
    assert read_xmp(rdf.encode()).taken_at == datetime(2000, 9, 27, 14, 35, 33, tzinfo=CEST)
    xap = f'<x:xapmeta xmlns:x="adobe:ns:meta/">{rdf}</x:xapmeta>'
    assert read_xmp(xap.encode("utf-16")).taken_at == datetime(2000, 9, 27, 14, 35, 33, tzinfo=CEST)


def test_an_empty_sidecar_has_no_fields():
    for data in (b"", b"  \r\n\t", codecs.BOM_UTF16_LE, "\n".encode("utf-16"), b"\0\0\0\0"):
        assert read_xmp(data) == XmpFields()


# Merging


def test_merge_into_the_lightroom_sidecar(lightroom, lightroom_text):
    merged = merge_xmp(lightroom, rating=4, keywords=["Oslo", "fjord"], title="The fjord", description="Evening")
    merged.decode("utf-8")  # UTF-8 now, whatever the original was
    assert merged.startswith(b'<?xpacket begin="\xef\xbb\xbf"')
    fields = read_xmp(merged)
    assert (fields.rating, fields.keywords, fields.title, fields.description) == (
        4,
        ("Oslo", "fjord"),
        "The fjord",
        "Evening",
    )
    assert fields.taken_at == datetime(2000, 9, 27, 14, 35, 33, tzinfo=CEST)
    keys = exiv2_keys(merged)
    assert keys["Xmp.xmp.Rating"] == "4"
    assert keys["Xmp.dc.subject"] == ["Oslo", "fjord"]
    assert keys["Xmp.dc.title"] == {'lang="x-default"': "The fjord"}
    assert keys["Xmp.dc.description"] == {'lang="x-default"': "Evening"}
    original = exiv2_keys(lightroom_text.encode("utf-8"))
    assert without(keys, *OWNED) == original
    assert set(original) == {"Xmp.xmp.CreatorTool", "Xmp.xmp.ModifyDate", "Xmp.xmp.MetadataDate", "Xmp.xmp.CreateDate"}


def test_merge_keeps_every_other_field_as_the_exiv2_command_reads_it(rich, tmp_path):
    exiv2 = shutil.which("exiv2")
    require(exiv2 is not None, "the exiv2 command (make test installs Debian's exiv2)")
    # The command reads only UTF-8 sidecars, so the original is given to it transcoded.
    (tmp_path / "original.xmp").write_bytes(rich.decode("utf-16").encode("utf-8"))
    merged = merge_xmp(rich, rating=2, keywords=["Oslo", "fjord", "ny"], title="Ny", description="")
    (tmp_path / "merged.xmp").write_bytes(merged)

    def listed(name: str) -> dict:
        run = subprocess.run(
            [exiv2, "-PXkv", str(tmp_path / name)], capture_output=True, text=True, timeout=30, check=True
        )
        return dict((line.split(maxsplit=1) + [""])[:2] for line in run.stdout.splitlines())

    original, after = listed("original.xmp"), listed("merged.xmp")
    assert len(original) > 20
    assert without(after, *OWNED) == without(original, *OWNED)
    assert after["Xmp.xmp.Rating"] == "2"
    assert after["Xmp.dc.subject"] == "Oslo, fjord, ny"
    assert after["Xmp.dc.title"] == 'lang="x-default" Ny, lang="nb-NO" Fjorden'
    assert "Xmp.dc.description" not in after


def test_merge_keeps_every_other_field_of_a_rich_sidecar(rich):
    original = exiv2_keys(rich.decode("utf-16").encode("utf-8"))
    merged = merge_xmp(rich, rating=3, keywords=["Oslo", "fjord"], title="Fjord", description="Kveld")
    keys = exiv2_keys(merged)
    assert without(keys, *OWNED) == without(original, *OWNED)
    # exiv2's Exif copy of a sidecar would have rewritten these as "59,54.8340000N" and "10,44.5083333E".
    assert b'exif:GPSLatitude="59,54.834N"' in merged
    assert b'exif:GPSLongitude="10,44,30.5E"' in merged
    assert keys["Xmp.dc.title"] == {'lang="x-default"': "Fjord", 'lang="nb-NO"': "Fjorden"}
    assert re.search(rb"<dc:subject>\s*<rdf:Bag>", merged)


def test_merge_keeps_regions_and_other_tools_keywords_of_an_embedded_packet(corpus):
    packet = embedded_xmp(corpus / "jpeg/orientation/portrait-orientation-6.jpg")
    merged = merge_xmp(packet, rating=5, keywords=["Marie Curie", "Pierre Curie", "Nobel"], title="", description="")
    assert without(exiv2_keys(merged), *OWNED) == without(exiv2_keys(packet), *OWNED)
    assert read_xmp(merged).keywords == ("Marie Curie", "Pierre Curie", "Nobel")


def test_emptied_fields_are_removed_and_stay_removed(rich):
    merged = merge_xmp(rich, rating=1, keywords=[], title="", description="  ")
    keys = exiv2_keys(merged)
    # exiv2's IPTC copy of the sidecar would have brought dc:subject, dc:title and dc:description back.
    assert not {"Xmp.dc.subject", "Xmp.dc.title", "Xmp.dc.description"} & set(keys)
    assert keys["Xmp.dc.creator"] == ["Ola Nordmann"]
    assert (read_xmp(merged).title, read_xmp(merged).description) == ("", "")


def test_a_removed_keyword_leaves_the_hierarchy_and_does_not_come_back(rich):
    merged = merge_xmp(rich, rating=0, keywords=["fjord"], title="", description="")
    assert exiv2_keys(merged)["Xmp.lr.hierarchicalSubject"] == ["Nature|fjord"]
    assert re.search(rb"<lr:hierarchicalSubject>\s*<rdf:Bag>", merged)
    assert read_xmp(merged).keywords == ("fjord",)
    emptied = merge_xmp(rich, rating=0, keywords=[], title="", description="")
    assert "Xmp.lr.hierarchicalSubject" not in exiv2_keys(emptied)
    assert read_xmp(emptied).keywords == ()


def test_keeping_the_keywords_keeps_the_hierarchy_as_it_was(rich):
    merged = merge_xmp(rich, rating=0, keywords=["Oslo", "fjord", "ny"], title="", description="")
    assert exiv2_keys(merged)["Xmp.lr.hierarchicalSubject"] == ["Places|Norway|Oslo", "Nature|fjord"]


def test_rating_zero_keeps_a_lightroom_rejection_and_other_ratings_replace_it(rich):
    kept = read_xmp(merge_xmp(rich, rating=0, keywords=[], title="", description=""))
    assert (kept.rating, kept.rejected) == (0, True)
    assert exiv2_keys(merge_xmp(rich, rating=0, keywords=[], title="", description=""))["Xmp.xmp.Rating"] == "-1"
    replaced = read_xmp(merge_xmp(rich, rating=2, keywords=[], title="", description=""))
    assert (replaced.rating, replaced.rejected) == (2, False)


@pytest.mark.parametrize("existing", [None, b"", b"\r\n"])
def test_merge_without_a_sidecar_creates_one(existing):
    merged = merge_xmp(existing, rating=3, keywords=["æøå", "🎉"], title="Tittel", description="Linje 1\nLinje 2")
    assert merged.startswith(b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>')
    assert merged.rstrip().endswith(b'<?xpacket end="w"?>')
    assert b'<x:xmpmeta xmlns:x="adobe:ns:meta/"' in merged
    assert exiv2_keys(merged) == {
        "Xmp.xmp.Rating": "3",
        "Xmp.dc.subject": ["æøå", "🎉"],
        "Xmp.dc.title": {'lang="x-default"': "Tittel"},
        "Xmp.dc.description": {'lang="x-default"': "Linje 1\nLinje 2"},
    }


def test_unicode_and_markup_keywords_round_trip(lightroom):
    keywords = ["æøå ÆØÅ", "🎉🇳🇴", "東京", "e\u0301", "a & <b> \"c\" 'd'", "Places|Norway"]
    merged = merge_xmp(lightroom, rating=1, keywords=keywords + ["æøå ÆØÅ", " "], title="🎉", description="<&>")
    fields = read_xmp(merged)
    assert fields.keywords == tuple(keywords)
    assert (fields.title, fields.description) == ("🎉", "<&>")
    assert exiv2_keys(merged)["Xmp.dc.subject"] == keywords


def test_merge_refuses_values_xmp_cannot_hold(lightroom):
    def merge(**changes):
        return merge_xmp(lightroom, **{"rating": 0, "keywords": [], "title": "", "description": "", **changes})

    for rating in (-1, 6, 2.0, True):
        with pytest.raises(ValueError, match="rating"):
            merge(rating=rating)
    with pytest.raises(TypeError, match="one string"):
        merge(keywords="Oslo")
    with pytest.raises(ValueError, match="type="):
        merge(keywords=['type="Struct"'])
    with pytest.raises(ValueError, match="U\\+0001"):
        merge(title="a\x01b")
    with pytest.raises(ValueError, match="U\\+FFFE"):
        merge(keywords=["a\ufffeb"])
    with pytest.raises(ValueError, match="U\\+0000"):
        merge(description="a\0b")


def test_merge_refuses_an_unreadable_sidecar_rather_than_replace_it():
    with pytest.raises(XmpUnreadable):
        merge_xmp(
            b"<?xpacket begin='' ?><x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF",
            rating=1,
            keywords=[],
            title="",
            description="",
        )


# Hostile input: each is refused with a sentence (a hang would fail at pytest-timeout's limit, pyproject.toml)


def refused(data: bytes, match: str) -> str:
    with pytest.raises(XmpUnreadable, match=match) as caught:
        read_xmp(data)
    message = str(caught.value)
    assert message.endswith(".") and " " in message
    return message


def test_a_doctype_is_refused(lightroom_text):
    body = lightroom_text[lightroom_text.index("<x:xmpmeta") :]
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    for prolog in (
        '<!DOCTYPE x:xmpmeta [<!ENTITY l0 "lol">' + laughs + "]>",  # billion laughs
        '<!DOCTYPE x:xmpmeta [<!ENTITY e SYSTEM "file:///etc/passwd">]>',  # external entity
        "<!doctype x:xmpmeta>",
    ):
        packet = '<?xml version="1.0"?>\n' + prolog + "\n" + body.replace("Lightroom 4.1", "&l9;&e;")
        refused(packet.encode(), "DOCTYPE")


def test_exiv2_too_refuses_a_doctype_after_the_packet_header():
    """Nothing depends on it, but exiv2 0.28 parses no DTD either: its XML validator refuses one."""
    packet = (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><!DOCTYPE x:xmpmeta [<!ENTITY e "expanded">]>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Label="&e;"/></rdf:RDF>'
        "</x:xmpmeta>"
    )
    with pytest.raises(RuntimeError, match="XMLValidator"):
        pyexiv2.ImageData(packet.encode())


def test_input_above_the_size_limit_is_refused_before_it_is_read():
    message = refused(b"<?xpacket " + b" " * 20_000_000, "more than")
    assert str(MAX_XMP_BYTES) in message


def test_malformed_and_truncated_xml_is_refused(lightroom_text):
    utf8 = lightroom_text.encode("utf-8")
    refused(utf8[: utf8.index(b"</rdf:Description>")], "exiv2 cannot read this XMP")
    # Cut in its padding, the packet has lost nothing but its end marker: exiv2 reads it, and so does ImaLink.
    assert read_xmp(utf8[: len(utf8) // 3]).taken_at == datetime(2000, 9, 27, 14, 35, 33, tzinfo=CEST)
    refused(utf8.replace(b"</rdf:Description>", b"</rdf:Descr>"), "exiv2 cannot read this XMP")
    refused(lightroom_text.encode("utf-16")[:-1], "not valid UTF-16")  # half a character at the end


def test_random_bytes_html_and_wrong_encodings_are_refused():
    noise = random.Random(16).randbytes(64 * 1024)
    refused(noise, "not valid UTF-8")
    refused(b"<html><body>photo</body></html>", "not XMP")
    refused("<x:xmpmeta xmlns:x='adobe:ns:meta/'>blåbær</x:xmpmeta>".encode("latin-1"), "not valid UTF-8")
    refused("\n<x:xmpmeta xmlns:x='adobe:ns:meta/'/>".encode("utf-16-le"), "NUL")


def test_deep_nesting_is_refused_by_exiv2_without_a_crash(lightroom_text):
    depth = 100_000
    nested = '<t:a rdf:parseType="Resource">' * depth + "<t:b>x</t:b>" + "</t:a>" * depth
    packet = derived(lightroom_text, ' xmlns:t="http://example.com/t/"', nested)
    refused(packet.encode("utf-8"), "exiv2 cannot read this XMP")


def test_rebinding_an_exiv2_prefix_is_refused_and_later_sidecars_are_unharmed(lightroom, lightroom_text):
    hostile = lightroom_text.replace('xmlns:xmp="http://ns.adobe.com/xap/1.0/"', 'xmlns:xmp="http://evil.example/"')
    refused(hostile.encode("utf-16"), "binds the prefix 'xmp'")
    merged = merge_xmp(lightroom, rating=2, keywords=[], title="", description="")
    assert b'xmlns:xmp="http://ns.adobe.com/xap/1.0/"' in merged
    assert b"evil" not in merged


def test_a_namespace_spelled_without_its_slash_is_still_the_same_namespace(lightroom_text):
    text = lightroom_text.replace('"http://ns.adobe.com/xap/1.0/"', '"http://ns.adobe.com/xap/1.0"')
    assert read_xmp(text.encode("utf-16")).taken_at == datetime(2000, 9, 27, 14, 35, 33, tzinfo=CEST)
    # Darwin Core's URI has no final slash in exiv2's own table.
    darwin = derived(lightroom_text, ' xmlns:dwc="http://rs.tdwg.org/dwc/index.htm" dwc:institutionCode="NHM"')
    assert read_xmp(darwin.encode("utf-16")).taken_at == datetime(2000, 9, 27, 14, 35, 33, tzinfo=CEST)


def test_the_prefix_table_is_exiv2s_own():
    empty = b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"/>' + b"\n" * 60
    for prefix, uri in _EXIV2_NAMESPACES.items():
        sidecar = pyexiv2.ImageData(empty)
        try:
            sidecar.modify_xmp({f"Xmp.{prefix}.probe": "1"})
            written = sidecar.get_bytes().decode()
        finally:
            sidecar.close()
        # exiv2 itself writes Darwin Core's slashless URI with a slash once a packet has used it.
        assert f'="{uri}"' in written or f'="{uri}/"' in written, prefix


def test_refused_packets_do_not_leak_memory():
    """pyexiv2 2.16 leaks a refused packet's copy unless imports.xmp frees it (see _Sidecar)."""
    broken = (
        b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">' + b" " * 1_000_000 + b"<broken>"
    )

    def resident_mb() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    require(Path("/proc/self/statm").exists(), "/proc/self/statm")
    before = resident_mb()
    for _ in range(100):
        with pytest.raises(XmpUnreadable):
            read_xmp(broken)
    assert resident_mb() - before < 30


# Threads


def test_reads_and_merges_from_many_threads_agree_with_one_thread(rich, lightroom):
    expected_rich, expected_lightroom = read_xmp(rich), read_xmp(lightroom)
    expected_merge = merge_xmp(rich, rating=4, keywords=["Oslo"], title="T", description="D")
    start = threading.Barrier(8)

    def work(number: int):
        start.wait()
        for _ in range(25):
            if number % 2:
                assert read_xmp(rich) == expected_rich
                assert read_xmp(lightroom) == expected_lightroom
            else:
                assert merge_xmp(rich, rating=4, keywords=["Oslo"], title="T", description="D") == expected_merge
        return number

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(work, range(8))) == list(range(8))
