"""The compiled decoder agrees with the reference parser (msgspec, then json.loads for the
reason) on every record: the same rows, bit for bit, and the same reason for every reject.

`make setup` builds and installs the extension; these tests need it (no skip: a missing
build is a failure here).
"""

from __future__ import annotations

import json
import math
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from inshape_jobs import native
from inshape_jobs.records import ChunkParser, ParsedChunk, RawChunk, RecordSchema, Reject
from inshape_jobs.spans import Segment, SpanChunk
from tests.unit.test_job_records import BAD

FEATURES = ("a", "b\u00e9", "q/x", "")
CLASSIFIER = RecordSchema(FEATURES, "label", 400, classification=True)
REGRESSOR = RecordSchema(FEATURES, "y", 400, classification=False)
SCHEMAS = (CLASSIFIER, REGRESSOR)
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def chunk(values: list[bytes | None]) -> RawChunk:
    n = len(values)
    return RawChunk(
        partitions=np.arange(n, dtype=np.int64) % 3,
        offsets=np.arange(100, 100 + n, dtype=np.int64),
        values=values,
    )


def both(schema: RecordSchema, values: list[bytes | None]) -> tuple[ParsedChunk, ParsedChunk]:
    parser = native.make_parser(schema)
    assert isinstance(parser, native.NativeParser)
    return parser.parse(chunk(values)), ChunkParser(schema).parse(chunk(values))


def assert_same(ours: ParsedChunk, reference: ParsedChunk) -> None:
    assert ours.features.shape == reference.features.shape
    # Bit for bit: the sign of a zero and the last digit of a rounding count.
    assert ours.features.tobytes() == reference.features.tobytes()
    assert ours.labels.dtype == reference.labels.dtype
    assert ours.labels.tolist() == reference.labels.tolist()
    assert ours.partitions.tolist() == reference.partitions.tolist()
    assert ours.offsets.tolist() == reference.offsets.tolist()
    assert ours.rejects == reference.rejects
    assert ours.rejected == reference.rejected


def check(schema: RecordSchema, values: list[bytes | None]) -> ParsedChunk:
    ours, reference = both(schema, values)
    assert_same(ours, reference)
    return ours


def test_the_extension_is_installed() -> None:
    assert native.extension() is not None, "make setup builds jobs/native/inshape_fastdecode"


# --- generated records -------------------------------------------------------------------------

numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(
        [0, -0.0, 2**53 + 1, 2**63, -(2**63), 2**64 + 1, 5e-324, 1.7976931348623157e308]
    ),
)
scalars = st.one_of(
    numbers,
    st.none(),
    st.booleans(),
    st.text(max_size=4),
    st.sampled_from([math.inf, -math.inf, math.nan]),  # json.dumps writes Infinity, NaN
)
anything = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
labels = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.text(max_size=3),
    numbers,
    anything,
)


@st.composite
def records(draw: st.DrawFn, schema: RecordSchema) -> bytes:
    """Mostly good records, with fields dropped, retyped, repeated and shuffled."""
    fields: list[tuple[str, Any]] = []
    for name in schema.features:
        if draw(st.integers(0, 20)) > 0:
            fields.append((name, draw(numbers if draw(st.integers(0, 10)) else anything)))
    if draw(st.integers(0, 20)) > 0:
        fields.append((schema.label, draw(labels if draw(st.booleans()) else st.integers(0, 9))))
    fields.extend(draw(st.lists(st.tuples(st.text(max_size=3), anything), max_size=2)))
    if draw(st.integers(0, 10)) == 0 and fields:  # a key twice: the last one counts
        fields.append((draw(st.sampled_from([n for n, _ in fields])), draw(anything)))
    order = draw(st.permutations(range(len(fields))))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", "\t:\r ")]))
    ascii_only = draw(st.booleans())  # keys and strings as \\u escapes, or raw UTF-8
    members = [
        json.dumps(fields[i][0], ensure_ascii=ascii_only)
        + separators[1]
        + json.dumps(fields[i][1], ensure_ascii=ascii_only, separators=separators)
        for i in order
    ]
    return ("{" + separators[0].join(members) + "}").encode()


@pytest.mark.parametrize("schema", SCHEMAS, ids=["classifier", "regressor"])
@SETTINGS
@given(data=st.data())
def test_generated_records_agree(schema: RecordSchema, data: st.DataObject) -> None:
    values = data.draw(st.lists(records(schema) | st.none(), min_size=1, max_size=20))
    check(schema, values)


def mutate(value: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(value)
    for kind, position, piece in edits:
        at = position % (len(out) + 1)
        if kind == 0:
            out[at:at] = piece
        elif kind == 1:
            del out[at : at + len(piece)]
        else:
            out[at : at + len(piece)] = piece
    return bytes(out)


json_bytes = st.sampled_from(
    [b"{", b"}", b"[", b"]", b'"', b"\\", b":", b",", b" ", b"-", b"0", b"1", b"e", b".", b"n",
     b"t", b"NaN", b"Infinity", b"\\u", b"d800", b"\x00", b"\xff", b"\xc3\xa9", b"\xef\xbb\xbf",
     b"\x1f", b"null", b"1e999"]
)  # fmt: skip


@pytest.mark.parametrize("schema", SCHEMAS, ids=["classifier", "regressor"])
@SETTINGS
@given(data=st.data())
def test_mutated_records_agree(schema: RecordSchema, data: st.DataObject) -> None:
    base = data.draw(records(schema))
    edits = data.draw(
        st.lists(
            st.tuples(
                st.integers(0, 2),
                st.integers(0, 500),
                json_bytes | st.binary(min_size=1, max_size=3),
            ),
            min_size=1,
            max_size=4,
        )
    )
    check(schema, [base, mutate(base, edits), base])


@SETTINGS
@given(value=st.binary(max_size=40))
def test_arbitrary_bytes_agree(value: bytes) -> None:
    check(CLASSIFIER, [value])


# --- edge cases named in records.py --------------------------------------------------------------

GOOD = b'{"a":1,"b\\u00e9":2,"q\\/x":3,"":4,'
EDGES = [
    GOOD + b'"label":1}',
    GOOD + b'"label":-0}',
    GOOD + b'"label":9223372036854775807}',
    GOOD + b'"label":-9223372036854775808}',
    GOOD + b'"label":9223372036854775808}',  # beyond int64: bad_label
    GOOD + b'"label":18446744073709551616}',
    GOOD + b'"label":1.0}',
    GOOD + b'"label":1e2}',
    GOOD + b'"label":true}',
    GOOD + b'"label":null}',
    GOOD + b'"label":""}',
    GOOD + b'"label":"caf\\u00e9"}',
    GOOD + b'"label":"\\ud83d\\ude00"}',  # a surrogate pair: one character
    GOOD + b'"label":"\\ud83d"}',  # a lone surrogate: json.loads takes it, msgspec not
    GOOD + b'"label":"\\udc00x"}',
    GOOD + b'"label":[1]}',
    GOOD + b'"label":{"x":1}}',
    GOOD + b'"label":NaN}',
    GOOD + b'"label":1,"z":NaN}',
    GOOD + b'"label":1,"z":-Infinity}',
    GOOD + b'"label":1,"z":"\xff"}',  # invalid UTF-8 msgspec skips unchecked
    GOOD + b'"label":1,"z":"\x01"}',
    GOOD + b'"label":1,"z":' + b"[" * 100 + b"]" * 100 + b"}",
    GOOD + b'"label":1,"z":' + b"[" * 2000 + b"]" * 2000 + b"}",
    GOOD + b'"label":1,"label":"x"}',
    GOOD + b'"label":"x","label":1}',
    GOOD + b'"label":true,"label":1}',  # json.loads is content, msgspec refused: non_finite
    b'{"a":"x","a":1,"b\\u00e9":2,"q\\/x":3,"":4,"label":1}',
    b'{"a":1,"a":"x","b\\u00e9":2,"q\\/x":3,"":4,"label":1}',
    b'{"a":1e400,"b\\u00e9":2,"q\\/x":3,"":4,"label":1}',
    b'{"a":1' + b"0" * 400 + b',"b\\u00e9":2,"q\\/x":3,"":4,"label":1}',
    b'{"a":1e400,"label":1}',
    b'{"a":-0,"b\\u00e9":-0.0,"q\\/x":1e-400,"":-1e-400,"label":1}',
    b'{"a":0.1,"b\\u00e9":2.2250738585072011e-308,"q\\/x":9007199254740993,"":4.9e-324,"label":1}',
    b'{"\\u0061":1,"b\xc3\xa9":2,"q\\u002fx":3,"":4,"label":1}',
    b'\xef\xbb\xbf{"a":1,"b\\u00e9":2,"q\\/x":3,"":4,"label":1}',
    '{"a":1,"b\\u00e9":2,"q\\/x":3,"":4,"label":1}'.encode("utf-16"),
    '{"a":1,"b\\u00e9":2,"q\\/x":3,"":4,"label":1}'.encode("utf-32-le"),
    b' \t\r\n{ "a" : 1 , "b\\u00e9":2,"q\\/x":3,"":4,"label":1 } \n',
    b'{"a":1,"b\\u00e9":2,"q\\/x":3,"":4,"label":1} x',
    b'{"a":1,"b\\u00e9":2,"q\\/x":3,"":4,"label":1,}',
    b'{"a":01,"b\\u00e9":2,"q\\/x":3,"":4,"label":1}',
    b'{"a":1.,"b\\u00e9":2,"q\\/x":3,"":4,"label":1}',
    b'{"a":+1,"b\\u00e9":2,"q\\/x":3,"":4,"label":1}',
    b"[]",
    b"NaN",
    b"-Infinity",
    b"",
    b" ",
    b"\x00\x00",
    None,
]


@pytest.mark.parametrize("value", EDGES)
@pytest.mark.parametrize("schema", SCHEMAS, ids=["classifier", "regressor"])
def test_edge_cases_agree(schema: RecordSchema, value: bytes | None) -> None:
    check(schema, [value])


@pytest.mark.parametrize(("name", "schema", "value", "reason"), BAD, ids=[case[0] for case in BAD])
def test_each_documented_reject_reason(
    name: str, schema: RecordSchema, value: bytes | None, reason: Reject
) -> None:
    parsed = check(schema, [value])
    assert parsed.rejects == {reason.value: 1}, name


@example(value=1e300 * 10)  # overflows to inf: written as Infinity, deferred
@settings(deadline=None)
@given(value=st.floats(allow_nan=False) | st.integers())
def test_every_float_is_rounded_as_msgspec_rounds_it(value: float) -> None:
    record = json.dumps({"a": value, "b\u00e9": 0, "q/x": 0, "": 0, "y": value}).encode()
    check(REGRESSOR, [record])


@st.composite
def decimal_texts(draw: st.DrawFn) -> str:
    """Number literals around the compiled decoder's exact fast path: digit strings up to 21
    long (2^53 and the u64 limit inside), a point anywhere, powers of ten around 22."""
    mantissa = draw(
        st.integers(0, 10**21)
        | st.sampled_from([2**53 - 1, 2**53, 2**53 + 1, 10**19 - 1, 10**19, 2**64 - 1, 2**64])
    )
    text = str(mantissa).zfill(draw(st.integers(1, 22)))
    point = draw(st.integers(0, len(text)))
    if 0 < point < len(text) or draw(st.booleans()):
        text = f"{text[:point] or '0'}.{text[point:] or '0'}"
    if draw(st.booleans()):
        text += draw(st.sampled_from(["e", "E", "e+", "e-", "E-"])) + str(draw(st.integers(0, 40)))
    text = text.lstrip("0") or "0"
    if text[0] in ".eE":
        text = "0" + text
    return ("-" if draw(st.booleans()) else "") + text


@SETTINGS
@example(text="9007199254740993")  # 2^53 + 1: past the exact path
@example(text="9007199254740992.0e-22")
@example(text="1e22")
@example(text="1e23")
@example(text="-0.0")
@example(text="-0")
@given(text=decimal_texts())
def test_short_decimals_are_rounded_as_msgspec_rounds_them(text: str) -> None:
    record = f'{{"a": {text}, "b\u00e9": 0, "q/x": 0, "": 0, "y": {text}}}'.encode()
    check(REGRESSOR, [record])


def test_a_digits_record_decodes_to_its_numbers() -> None:
    features = tuple(f"px{i}" for i in range(64))
    schema = RecordSchema(features, "label", 65_536, True)
    row = [float(i % 17) / 3 for i in range(64)]
    record = json.dumps({**dict(zip(features, row, strict=True)), "label": 7}).encode()
    parsed = check(schema, [record] * 5000)  # enough records for the parallel parts
    assert parsed.features.tolist() == [row] * 5000
    assert parsed.labels.tolist() == [7] * 5000


def test_rows_stay_in_arrival_order_across_parallel_parts_and_deferrals() -> None:
    good = [b'{"a":%d,"b\\u00e9":0,"q\\/x":0,"":0,"label":%d}' % (i, i % 5) for i in range(9000)]
    values: list[bytes | None] = list(good)
    values[10] = b"bad"
    values[4500] = GOOD + b'"label":1,"z":NaN}'  # deferred, rejected
    values[6000] = GOOD + b'"label":1,"z":"\xff"}'  # deferred, kept
    values[8999] = GOOD + b'"label":"cat"}'  # a string class: every label a string
    parsed = check(CLASSIFIER, values)
    assert len(parsed) == 8998
    assert parsed.labels.dtype == object


def test_span_chunks_parse_as_their_values() -> None:
    values: list[bytes | None] = [GOOD + b'"label":1}', None, b"x", GOOD + b'"label":2}']
    segment = Segment.of_values(values)
    spans = SpanChunk(
        np.zeros(4, dtype=np.int64),
        np.arange(4, dtype=np.int64),
        (segment[:1], segment[1:3], segment[3:]),
    )
    assert spans.values == values
    assert_same(native.make_parser(CLASSIFIER).parse(spans), ChunkParser(CLASSIFIER).parse(spans))


def test_only_flat_schemas_go_to_the_extension() -> None:
    assert not native.flat_schema(RecordSchema(("a", "a"), "label", 100, True))
    assert not native.flat_schema(RecordSchema(("a", "label"), "label", 100, True))
    assert not native.flat_schema(RecordSchema((), "label", 100, True))
    assert native.flat_schema(CLASSIFIER)
    assert isinstance(native.make_parser(CLASSIFIER, native=False), ChunkParser)


DECIDED_NATIVELY = [
    (GOOD + b'"label":1}', None),
    (b"x" * 401, Reject.OVERSIZED),
    (b'{"a":1', Reject.NOT_JSON),
    (b"[1]", Reject.NOT_OBJECT),
    (b'{"label":1}', Reject.MISSING_FEATURE),
    (b'{"a":"1","b\\u00e9":2,"q\\/x":3,"":4,"label":1}', Reject.NON_NUMERIC_FEATURE),
    (b'{"a":1e999,"b\\u00e9":2,"q\\/x":3,"":4,"label":1}', Reject.NON_FINITE),
    (GOOD + b'"label":null}', Reject.MISSING_LABEL),
    (GOOD + b'"label":1.5}', Reject.BAD_LABEL),
]


@pytest.mark.parametrize(("value", "reason"), DECIDED_NATIVELY)
def test_the_extension_decides_ordinary_records_itself(value: bytes, reason: Reject | None) -> None:
    """Deferring to the reference is for Python's json leniencies, not the common rejects."""
    module = native.extension()
    decoder = module.Decoder(list(FEATURES), "label", 400, True)
    features = np.empty((1, len(FEATURES)))
    labels, kept = np.empty(1, dtype=np.int64), np.empty(1, dtype=np.int64)
    lengths = np.array([len(value)], dtype=np.int64)
    filled, codes, _ = decoder.parse(
        [value], [1], np.zeros(1, dtype=np.int64), lengths, features=features, labels=labels,
        kept=kept,
    )  # fmt: skip
    if reason is None:
        assert (filled, codes) == (1, [])
        assert features.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    else:
        assert (filled, codes) == (0, [(0, native.REASONS.index(reason))])


def test_the_environment_can_turn_the_extension_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.DECODER_ENV, "msgspec")
    native.extension.cache_clear()
    try:
        assert native.extension() is None
        assert isinstance(native.make_parser(CLASSIFIER), ChunkParser)
    finally:
        monkeypatch.delenv(native.DECODER_ENV)
        native.extension.cache_clear()
    assert isinstance(native.make_parser(CLASSIFIER), native.NativeParser)


def test_reason_codes_follow_the_reject_enum() -> None:
    assert [r.value for r in native.REASONS] == [r.value for r in list(Reject)[:8]]


def test_a_chunk_of_many_buffers_parses_as_one_across_parallel_parts() -> None:
    """Segments of separate buffers, their boundaries not on the parallel parts' ones."""
    values: list[bytes | None] = [
        b'{"a":%d,"b\\u00e9":0,"q\\/x":0,"":0,"label":%d}' % (i, i % 7) for i in range(10_000)
    ]
    for i in (0, 1233, 4999, 5000, 9999):
        values[i] = b'{"a":"x"}' if i % 2 else None
    bounds = [0, 1, 1234, 4000, 4999, 7777, 10_000]
    segments = tuple(Segment.of_values(values[first:last]) for first, last in pairwise(bounds))
    spans = SpanChunk(
        np.full(10_000, 2, dtype=np.int64), np.arange(10_000, dtype=np.int64), segments
    )
    ours = native.make_parser(CLASSIFIER).parse(spans)
    assert_same(ours, ChunkParser(CLASSIFIER).parse(spans))
    assert len(ours) == 9995
    assert ours.features[:, 0].tolist() == [
        i for i in range(10_000) if i not in (0, 1233, 4999, 5000, 9999)
    ]


WORDS = RecordSchema(("abcdef", "abcdefg", "abcdefgh", "é\u00e9x"), "l", 400, True)


@pytest.mark.parametrize(
    "value",
    [
        b'{"abcdef":1,"abcdefg":2,"abcdefgh":3,"\xc3\xa9\xc3\xa9x":4,"l":1}',
        b'{"abcdef":1,"abcdefg":2,"abcdefgh":3,"\xc3\xa9\xc3\xa9x":4,"l":1,"abcdefgX":5}',
        b'{"abcdefX":1,"abcdef":1,"abcdefg":2,"abcdefgh":3,"\xc3\xa9\xc3\xa9x":4,"l":1}',
        b'{"abcde":1,"abcdefg":2,"abcdefgh":3,"\xc3\xa9\xc3\xa9x":4,"l":1}',
        b'{"abcdef":1,"abcdefgh":3,"abcdefg":2,"\xc3\xa9\xc3\xa9x":4,"l":1}',
        b'{"abcdef":1,"abcdefg":2,"abcdefghi":3,"\xc3\xa9\xc3\xa9x":4,"l":1}',
        b'{"abcdef":1,"abcdefg":2,"abcdefgh":3,"\xc3\xa9\xc3\xa9":4,"l":1}',
        b'{"abcdef":1,"abcdefg":2,"abcdefgh":3,"\xc3\xa9\xc3\xa9x":4,"l"',
        b'{"abcdef":1,"abcdefg":2,"abcdefgh":3,"\xc3\xa9\xc3\xa9x":4,"l":1,"abcdef"',
    ],
)
def test_keys_around_eight_bytes_match_exactly(value: bytes) -> None:
    """Keys of up to 8 bytes (with the quote) are compared as one word; longer ones, keys
    near the end of the value and keys that extend a name are not mistaken."""
    check(WORDS, [value])
