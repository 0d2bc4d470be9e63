"""Probes of hostile data and flags (issue 21, items 6, 10 and 11): every one is the user's error —
``FILE: error: …`` and exit status 2 — never an internal error (exit 1), a NaN fit, a hang or an
unbounded allocation.

Reads that could run away (a device, a compression bomb, sizes of 10⁹) run the command in a child process
under a memory limit and a timeout; the rest run it in-process, which returns the same exit status.
"""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from conftest import MODELS, ROOT, run_cli
from ppvi.errors import PPVIError
from ppvi.io.reading import read_npz

POISSON = MODELS / "gamma_poisson.ppvi"       # data discoveries[N] : count
LDA = MODELS / "lda.ppvi"                     # data doc[T] : index(M), word[T] : index(V)
GMM_1D = MODELS / "gmm_1d.ppvi"
MEMORY_LIMIT = 2 << 30                        # of the child's address space


def _child(argv, timeout: float = 120) -> tuple[int, str]:
    """``ppvi ARGV`` in a child process with at most MEMORY_LIMIT of address space; (exit status, stderr)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "ppvi", *map(str, argv)], capture_output=True, text=True,
                       timeout=timeout, preexec_fn=limit, env=env)
    return p.returncode, p.stderr


def _user_error(code: int, err: str, path) -> None:
    assert code == 2, err
    assert err.startswith(f"{path}: error: ") or err.startswith(f"{path}:"), err
    assert "internal error" not in err and "Traceback" not in err


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


# ----------------------------------------------------------------- values out of range (item 6)
@pytest.mark.parametrize("doc", [np.array([0, 2**63], dtype=np.uint64), np.array([0.0, 1e19]),
                                 np.array([0, 2**62], dtype=np.int64)])
def test_index_data_beyond_any_size(tmp_path, capsys, doc):
    """Index data ≥ 2⁶³ were cast to INT64_MIN and counted as category 0 by unchecked compiled code."""
    path = _npz(tmp_path / "d.npz", doc=doc, word=np.array([0, 1]))
    code, _, err = run_cli(["run", LDA, "--data", path, "--quiet"], capsys)
    _user_error(code, err, path)
    assert "`doc[1]` = " in err and "is too large for index data: at most 2147483646" in err


@pytest.mark.parametrize("counts", [[1, 1e19, 3], np.array([1, 2**64 - 1], dtype=np.uint64),
                                    np.array([1, 2**53 + 1], dtype=np.int64)])
def test_counts_beyond_exact_floats(tmp_path, capsys, counts):
    """Counts of 1e19 gave a NaN ELBO (an internal fault)."""
    path = _npz(tmp_path / "d.npz", discoveries=np.asarray(counts))
    code, _, err = run_cli(["run", POISSON, "--data", path, "--quiet"], capsys)
    _user_error(code, err, path)
    assert "`discoveries[1]` = " in err and "too large for count data: at most 9007199254740992" in err


# ----------------------------------------------------------------- files that crashed the reader (item 10)
def test_json_integer_of_400_digits(tmp_path, capsys):
    path = tmp_path / "d.json"
    path.write_text('{"discoveries": [1, 1' + "0" * 400 + "]}")
    code, _, err = run_cli(["run", POISSON, "--data", path, "--quiet"], capsys)
    _user_error(code, err, path)
    assert "`discoveries[1]` is inf: data must be finite" in err


def test_json_nested_2000_deep(tmp_path, capsys):
    path = tmp_path / "d.json"
    path.write_text('{"discoveries": ' + "[" * 2000 + "]" * 2000 + "}")
    code, _, err = run_cli(["run", POISSON, "--data", path, "--quiet"], capsys)
    _user_error(code, err, path)
    assert "nested too deeply" in err


@pytest.mark.parametrize("text, needle", [
    ('{"discoveries": [1, null, 3]}', "`discoveries[1]` is null, a missing value"),
    ('{"discoveries": [1, "2", 3]}', "`discoveries[1]` is a string, not a number"),
    ('{"discoveries": [1, 2], "discoveries": [3]}', "`discoveries` appears twice"),
    ('[1, 2, 3]', "a .json data file holds an object mapping names to arrays"),
    ('{"discoveries": [1, 2,]}', ":1:23: error: not valid JSON: Expecting value"),
])
def test_json_mistakes(tmp_path, capsys, text, needle):
    path = tmp_path / "d.json"
    path.write_text(text)
    code, _, err = run_cli(["run", POISSON, "--data", path, "--quiet"], capsys)
    _user_error(code, err, path)
    assert needle in err


def test_csv_field_over_128_kib(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("discoveries\n1\n" + "2" * (140 << 10) + "\n")
    code, _, err = run_cli(["run", POISSON, "--data", path, "--quiet"], capsys)
    _user_error(code, err, path)
    assert err.startswith(f"{path}:3:1: error: cannot read the record: a field longer than 131,072 characters")
    assert max(map(len, err.splitlines())) < 200          # the line is shown shortened


def _header(text: str, version: tuple[int, int] = (1, 0)) -> bytes:
    """An .npy member with the header ``text`` (padded as numpy pads it) and 24 bytes of data."""
    raw = text.encode("latin1")
    raw += b" " * ((64 - (10 + len(raw) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY" + bytes(version) + len(raw).to_bytes(2, "little") + raw + np.ones(3).tobytes()


@pytest.mark.parametrize("header, needle", [
    ("{'descr': <f8}", "malformed .npy header"),
    ("(" * 3000, "malformed .npy header"),
    ("[1, 2]", "malformed .npy header"),
    ("{'descr': 'zz', 'fortran_order': False, 'shape': (3,), }", "malformed .npy header"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (-3,), }", "malformed .npy header (shape (-3,))"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (10**12,), }", "malformed .npy header"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }",
     "its header declares shape (1000000000000,) of float64 (8,000,000,000,000 bytes) but the member holds 24"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", "(16 bytes) but the member holds 24 bytes"),
    ("{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", "`discoveries` is not numeric (dtype object)"),
    ("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (3,), }", "is not numeric"),
])
def test_malformed_npy_header_in_npz(tmp_path, capsys, header, needle):
    path = tmp_path / "d.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("discoveries.npy", _header(header))
    code, _, err = run_cli(["run", POISSON, "--data", path, "--quiet"], capsys)
    _user_error(code, err, path)
    assert needle in err


def test_npz_member_with_a_bad_checksum(tmp_path, capsys):
    path = _npz(tmp_path / "d.npz", discoveries=np.arange(100.0))
    raw = bytearray(path.read_bytes())
    raw[raw.index(np.arange(100.0)[50:51].tobytes())] ^= 0xFF       # one byte of the data, stored uncompressed
    path.write_bytes(bytes(raw))
    code, _, err = run_cli(["run", POISSON, "--data", path, "--quiet"], capsys)
    _user_error(code, err, path)
    assert "`discoveries` cannot be read: Bad CRC-32" in err


def test_npz_that_is_an_npy_file(tmp_path, capsys):
    path = tmp_path / "d.npz"
    with open(path, "wb") as fh:
        np.save(fh, np.arange(3.0))
    code, _, err = run_cli(["run", POISSON, "--data", path, "--quiet"], capsys)
    _user_error(code, err, path)
    assert "this is a .npy file (one array), not an .npz file" in err


@pytest.mark.parametrize("name", ["/dev/zero", "zero.json", "zero.csv", "zero.npz"])
def test_dev_zero_as_data(tmp_path, name):
    """An unbounded read: /dev/zero never ends (and has no line ends)."""
    path = name if name.startswith("/") else tmp_path / name
    if not name.startswith("/"):
        os.symlink("/dev/zero", path)
    code, err = _child(["run", POISSON, "--data", path, "--quiet"], timeout=60)
    _user_error(code, err, path)


# ----------------------------------------------------------------- resources (item 11)
def _bomb_npz(path, used: np.ndarray, unused_bytes: int) -> None:
    """An .npz whose member `junk` decompresses to ``unused_bytes`` of zeros (about 1000:1 compressed)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        buf = io.BytesIO()
        np.save(buf, used)
        z.writestr("discoveries.npy", buf.getvalue())
        with z.open("junk.npy", "w", force_zip64=True) as member:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                          "shape": (unused_bytes,)})
            member.write(header.getvalue())
            block = bytes(1 << 20)
            for _ in range(unused_bytes >> 20):
                member.write(block)


def test_unused_npz_member_is_not_decompressed(tmp_path, monkeypatch):
    """A 4.7 MB file whose unused member decompressed to 4.8 GB cost 4.8 GB: only used members are opened.

    (Checked by the members opened, not by tracemalloc's peak: NumPy's allocations make that figure
    meaningless on some builds — 1.3·10¹⁴ bytes on CI's.)"""
    path = tmp_path / "bomb.npz"
    _bomb_npz(path, np.arange(100.0), 128 << 20)
    assert path.stat().st_size < 1 << 20
    opened = []
    real_open = zipfile.ZipFile.open

    def recording_open(self, name, *args, **kwargs):
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", recording_open)
    arrays = read_npz(str(path), ["discoveries"], None).arrays
    np.testing.assert_array_equal(arrays["discoveries"], np.arange(100.0))
    assert opened == ["discoveries.npy"]


def test_unused_member_is_not_read_through_the_command(tmp_path, capsys):
    """An unused member that is damaged: reading it would be an error of its own."""
    path = _npz(tmp_path / "d.npz", discoveries=np.array([1.0, -2.0]), junk=np.arange(1000.0))
    raw = bytearray(path.read_bytes())
    raw[raw.index(np.arange(1000.0)[500:501].tobytes())] ^= 0xFF
    path.write_bytes(bytes(raw))
    code, _, err = run_cli(["run", POISSON, "--data", path, "--quiet"], capsys)
    _user_error(code, err, path)
    assert "`discoveries[1]` = -2.0 must be a whole number ≥ 0" in err


def test_npz_member_larger_than_memory_is_refused_before_reading(tmp_path):
    path = _npz(tmp_path / "d.npz", discoveries=np.arange(1000.0))
    with pytest.raises(PPVIError, match=r"`discoveries` takes 8,128 bytes decompressed, more than this "
                                        r"machine's 1,000 bytes"):
        read_npz(str(path), ["discoveries"], budget=1000)


def test_index_data_implying_a_billion_categories(tmp_path):
    path = _npz(tmp_path / "d.npz", doc=np.array([0, 10**9 - 1]), word=np.array([0, 1]))
    code, err = _child(["run", LDA, "--data", path, "--dim", "K=1000", "--quiet"])
    _user_error(code, err, path)
    assert "`theta[M, K]`" in err and "M = 1000000000 (1 + the largest value of `doc`)" in err
    assert "hint: index data are 0-based category numbers: renumber `doc` 0, 1, …, M − 1" in err


def test_a_dim_too_large_for_memory(tmp_path):
    code, err = _child(["run", GMM_1D, "--dim", "K=2147483647", "--quiet"])
    _user_error(code, err, MODELS / "gmm_1d.csv")
    assert "K = 2147483647 (as given)" in err and "more than this machine's" in err


# ----------------------------------------------------------------- flags (item 10)
@pytest.mark.parametrize("flags, message", [
    (["--seed", "-5"], "ppvi run: error: argument --seed: -5 is not ≥ 0"),
    (["--dim", "K=99999999999999999999"],
     "ppvi: error: --dim K=99999999999999999999: a dim's size is at least 1 and at most 2147483647"),
    (["--dim", "K=2147483648"], "ppvi: error: --dim K=2147483648: a dim's size is at least 1 and at most 2147483647"),
    (["--dim", "K=0"], "ppvi: error: --dim K=0: a dim's size is at least 1"),
    (["--dim", "K=-1"], "ppvi: error: --dim K=-1: a dim's size is at least 1"),
    (["--dim", "K=3.5"], "ppvi: error: --dim K=3.5: expected NAME=INT"),
    (["--dim", "k=3"], "ppvi: error: --dim k=3: the model has no dim `k`\nhint: did you mean `K`?"),
])
def test_bad_flags_exit_2(flags, message):
    code, err = _child(["run", GMM_1D, "--quiet", *flags])
    assert code == 2 and err.startswith(message), err
