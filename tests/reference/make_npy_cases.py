#!/usr/bin/python3
"""Small .npy files written by NumPy itself, for the reader and writer tests (tests/test_npy.cpp).

Run:  /usr/bin/python3 tests/reference/make_npy_cases.py   (from anywhere; needs NumPy)
Writes tests/reference/data/npy/*.npy (stale *.npy there deleted first).

Float values are v(i) = (i - n/3) / 7 for element i of n (C order), computed in float64 and
rounded to the dtype, so the test recomputes them exactly; specials.npy holds IEEE special values
and int64.npy the int64 extremes. Files named bad_* hold arrays NumPy writes that posenc does not
read (dtype, byte order, memory order).
"""
import io
import pathlib

import numpy as np
import numpy.lib.format as fmt

OUT = pathlib.Path(__file__).resolve().parent / "data" / "npy"


def values(shape, dtype):
    n = int(np.prod(shape))
    return ((np.arange(n) - n / 3) / 7).astype(dtype).reshape(shape)


def save(name, arr, version=None, trailing=b""):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, arr)  # NumPy picks 1.0 for everything here
    else:
        fmt.write_array(buf, arr, version=version)
    (OUT / (name + ".npy")).write_bytes(buf.getvalue() + trailing)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.npy"):
        old.unlink()
    f4, f8, i8 = np.dtype("<f4"), np.dtype("<f8"), np.dtype("<i8")
    # Format 1.0 (np.save), every supported dtype and rank.
    save("v1_f4_2x3", values((2, 3), f4))
    save("v1_f8_5", values((5,), f8))
    save("v1_f8_0d", np.array(0.1, f8))
    save("v1_f4_2x3x4", values((2, 3, 4), f4))
    save("v1_f8_0", np.zeros((0,), f8))
    save("v1_f4_0x3", np.zeros((0, 3), f4))
    save("v1_f8_2x0x4", np.zeros((2, 0, 4), f8))
    save("v1_f8_20d", values((1,) * 19 + (3,), f8))
    save("v1_f8_1500", values((1500,), f8))  # data past the first 10012 bytes
    save("v1_f4_specials", np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, 3.4028235e38], f4))
    save("v1_i8_extremes", np.array([-2**63, -1, 0, 1, 2**63 - 1], i8))
    save("v1_i8_0d", np.array(-5, i8))
    # Bytes after the data: numpy.load reads exactly the declared count and ignores them.
    save("v1_f8_3_trailing", values((3,), f8), trailing=b"trailing bytes")
    # Formats 2.0 and 3.0 (4-byte header length; 3.0 is utf-8).
    save("v2_f8_3x2", values((3, 2), f8), version=(2, 0))
    save("v2_f4_0d", np.array(2.5, f4), version=(2, 0))
    save("v3_i8_2x2x2", np.arange(-4, 4, dtype=i8).reshape(2, 2, 2), version=(3, 0))
    save("v3_f4_4", values((4,), f4), version=(3, 0))
    # Written by NumPy, refused by posenc.
    save("bad_big_endian", values((2, 2), np.dtype(">f8")))
    save("bad_fortran", np.asfortranarray(values((2, 3), f8)))
    save("bad_structured", np.zeros(2, dtype=[("a", "<f4"), ("b", "<i8")]))
    save("bad_i4", np.arange(3, dtype="<i4"))
    save("bad_u1", np.arange(3, dtype="u1"))
    save("bad_bool", np.array([True, False]))
    save("bad_complex", np.zeros(2, "<c8"))
    save("bad_unicode", np.array(["ab", "c"]))


if __name__ == "__main__":
    main()
