"""More than a thousand broken, truncated and odd image files through the real diagnosis path.

Each file goes through Diagnoser.diagnose_file (read_image -> decode_image -> quality gate ->
onnxruntime). The only acceptable outcomes are an ImageError (bad input, said clearly) or a
well-formed Diagnosis; anything else is a crash the field would see. The shipped model is
used when it exists; until then a tiny real ONNX model stands in (the decoding path, which
is what the fuzzing exercises, is the same).
"""

from __future__ import annotations

import math
import random
import struct
import zlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.classifier import OnnxClassifier
from appliance.diagnosis import Diagnoser
from appliance.errors import ImageError
from appliance.result import Diagnosis, Verdict
from appliance.samples import sample_paths
from tests.helpers.figures import report_figure
from tests.helpers.paths import MODEL

SEED = 20240517
MUTANTS_PER_BASE = 70
CLASSES = ["tomato__healthy", "tomato__late_blight", "background__no_leaf"]


def tiny_model(path: Path) -> Path:
    """A real ONNX classifier (mean colour -> 3 logits) with the metadata the app reads."""
    import onnx
    from onnx import TensorProto, helper

    from models.pipeline.export import stamp_metadata

    weights = helper.make_tensor("w", TensorProto.FLOAT, [3, 3], np.eye(3, dtype=np.float32).ravel().tolist())
    bias = helper.make_tensor("b", TensorProto.FLOAT, [3], [0.0, 0.0, 0.0])
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w", "b"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    stamp_metadata(path, {
        "appliance.model_name": "tiny", "appliance.version": "0.0.1", "appliance.precision": "fp32",
        "appliance.classes": CLASSES, "appliance.input_size": 32, "appliance.mean": [0.5, 0.5, 0.5],
        "appliance.std": [0.25, 0.25, 0.25], "appliance.temperature": 1.5, "appliance.refuse_below": 0.5,
        "appliance.data_manifest_sha256": "0" * 64,
    })  # fmt: skip
    return path


@pytest.fixture(scope="module")
def fuzz_diagnoser(tmp_path_factory: pytest.TempPathFactory) -> tuple[Diagnoser, str]:
    if MODEL.exists():
        model, which = MODEL, "shipped"
    else:
        model, which = tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx"), "tiny"
    classifier = OnnxClassifier(model, threads=1)
    return Diagnoser(classifier, classifier.info), which


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_claiming(width: int, height: int, pixels: bytes = b"") -> bytes:
    """A PNG whose (valid-CRC) header claims any size, with whatever pixel data follows."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(pixels or b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG with its frame header (SOF0/SOF2) patched to another size."""
    data = bytearray(jpeg)
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at > 0:
            data[at + 5 : at + 9] = struct.pack(">HH", height, width)
            return bytes(data)
    return bytes(data)


def base_images() -> dict[str, bytes]:
    """Real photos in every format the appliance accepts, plus edge-case encodings."""
    bases = {p.name: p.read_bytes() for p in sample_paths()}
    photo = cv2.imread(str(sample_paths()[0]), cv2.IMREAD_COLOR)
    small = cv2.resize(photo, (64, 48))
    encoded = {
        "sample.png": cv2.imencode(".png", photo)[1],
        "small.jpg": cv2.imencode(".jpg", small)[1],
        "progressive.jpg": cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1],
        "grey.png": cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))[1],
        "deep16.png": cv2.imencode(".png", small.astype(np.uint16) * 257)[1],
        "alpha.png": cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_BGR2BGRA))[1],
        "sample.bmp": cv2.imencode(".bmp", small)[1],
        "sample.webp": cv2.imencode(".webp", small)[1],
        "sample.tif": cv2.imencode(".tif", small)[1],
    }
    bases.update({name: buf.tobytes() for name, buf in encoded.items()})
    return bases


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random damage of the kinds storage and transfers cause, or that a hostile file carries."""
    buf = bytearray(data)
    kind = rng.randrange(9)
    if kind == 0:  # truncated anywhere, header included
        return bytes(buf[: rng.randrange(len(buf))])
    if kind == 1:  # scattered bit flips
        for _ in range(rng.randint(1, 24)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif kind == 2:  # damage inside the headers
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(min(len(buf), 700))] = rng.randrange(256)
    elif kind == 3:  # a zeroed block (a bad sector)
        start = rng.randrange(len(buf))
        buf[start : start + rng.randint(16, 4096)] = bytes(min(len(buf) - start, 4096))
    elif kind == 4:  # random bytes spliced in
        at = rng.randrange(len(buf))
        buf[at:at] = rng.randbytes(rng.randint(1, 512))
    elif kind == 5:  # a chunk cut out
        at = rng.randrange(len(buf))
        del buf[at : at + rng.randint(1, 2048)]
    elif kind == 6:  # a segment repeated
        at = rng.randrange(len(buf))
        buf[at:at] = buf[at : at + rng.randint(1, 1024)]
    elif kind == 7:  # the tail replaced with garbage
        cut = rng.randrange(len(buf))
        buf[cut:] = rng.randbytes(rng.randint(0, 256))
    else:  # a real header on someone else's body
        return bytes(buf[: rng.randint(2, 64)]) + rng.randbytes(rng.randint(0, 4096))
    return bytes(buf)


BMP_HUGE = b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 60000, -60000, 1, 24, *[0] * 6)


def odd_files(bases: dict[str, bytes], rng: random.Random) -> list[tuple[str, bytes]]:
    jpeg = bases["small.jpg"]
    cases = [
        ("empty", b""),
        ("one-byte", b"\xff"),
        ("jpeg-magic-only", b"\xff\xd8\xff"),
        ("png-magic-only", b"\x89PNG\r\n\x1a\n"),
        ("zeros-1k", bytes(1024)),
        ("zeros-1m", bytes(2**20)),
        ("text", b"this is not a photo\n" * 50),
        ("html", b"<!doctype html><html><body>404</body></html>"),
        ("gif", b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"),
        ("png-100000x100000", png_claiming(100_000, 100_000)),
        ("png-2^31x1", png_claiming(2**31 - 1, 1)),
        ("png-0x0", png_claiming(0, 0)),
        ("png-1x1", png_claiming(1, 1, b"\0\x10\x80\x10")),
        ("png-8000x8000-empty", png_claiming(8000, 8000)),
        ("jpeg-65535x65535", jpeg_claiming(jpeg, 65535, 65535)),
        ("jpeg-0x0", jpeg_claiming(jpeg, 0, 0)),
        ("jpeg-1x65535", jpeg_claiming(jpeg, 1, 65535)),
        ("jpeg-6000x5000", jpeg_claiming(jpeg, 6000, 5000)),
        ("bmp-huge", BMP_HUGE),
        ("tiff-header-only", b"II*\x00\x08\x00\x00\x00\x00\x00"),
        ("webp-header-only", b"RIFF\x10\x00\x00\x00WEBPVP8 \x00\x00\x00\x00"),
    ]  # fmt: skip
    for size in (2, 3, 17, 100, 1000):
        cases.append((f"random-{size}", rng.randbytes(size)))
    return cases


def check_diagnosis(d: Diagnosis) -> None:
    assert isinstance(d.verdict, Verdict) and d.top
    assert all(0.0 <= r.probability <= 1.0 and math.isfinite(r.probability) for r in d.top)
    assert (d.reason is None) == (d.verdict is Verdict.DIAGNOSIS)


@pytest.mark.filterwarnings("ignore::UserWarning:PIL.*")  # Pillow's header reader grumbling about corrupt EXIF
def test_fuzzed_images_give_an_image_error_or_a_diagnosis_never_a_crash(
    fuzz_diagnoser: tuple[Diagnoser, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    diagnoser, which = fuzz_diagnoser
    rng = random.Random(SEED)
    bases = base_images()
    cases = odd_files(bases, rng) + [(f"intact-{name}", data) for name, data in bases.items()]
    for name, data in bases.items():
        cases += [(f"{name}-mutant{i}", mutate(data, rng)) for i in range(MUTANTS_PER_BASE)]
    assert len(cases) >= 1000

    outcomes: Counter[str] = Counter()
    crashes: list[str] = []
    sample = tmp_path / "case.bin"
    for index, (name, data) in enumerate(cases):
        path = tmp_path / f"{index:05d}.jpg" if index % 7 == 0 else sample  # some keep their file for reruns
        path.write_bytes(data)
        try:
            check_diagnosis(diagnoser.diagnose_file(path))
            outcomes["diagnosis"] += 1
        except ImageError as exc:
            assert str(path) in str(exc), f"{name}: the message must name the file: {exc}"
            outcomes["image_error"] += 1
        except Exception as exc:  # the bug this test exists to find
            crashes.append(f"{name}: {type(exc).__name__}: {exc}")
    with pytest.raises(ImageError, match="is a folder"):
        diagnoser.diagnose_file(tmp_path)
    line = (
        f"FUZZ model={which} cases={len(cases)} diagnoses={outcomes['diagnosis']} "
        f"image_errors={outcomes['image_error']} crashes={len(crashes)}"
    )
    report_figure(line)
    with capsys.disabled():
        print("\n" + line)
    assert crashes == []
    for name in bases:  # every intact format decodes
        assert diagnoser.diagnose_file(_write(tmp_path / f"ok-{name}", bases[name])).model_version
    assert outcomes["diagnosis"] > 100 and outcomes["image_error"] > 100  # the mix really exercised both paths


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
