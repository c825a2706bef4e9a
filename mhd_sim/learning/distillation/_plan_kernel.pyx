# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""A step's plan in C (plan_kernel.py says when it runs): the bounded draws and the ages of
the cached predictions the step reads, exact by construction.

- Draws: numpy's own ``random_bounded_uint64``, the function ``Generator.integers(0, high)``
  calls for each element, on the generator's own bit generator and under its lock: numpy's
  numbers, and the stream left where numpy leaves it.
- Sums in numpy's order: ``np.add.reduce`` over a slot's ages adds them in order when the
  [K, B] table holds two or more slots (its inner loop runs across slots) and pairwise when
  it holds one; the total over slots is pairwise (:func:`pairwise`, numpy's
  ``pairwise_sum``). Maxima and integer counts do not depend on the order.
"""

from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from numpy.random cimport bitgen_t
from numpy.random.c_distributions cimport random_bounded_uint64

cimport numpy as cnp

cnp.import_array()


def integers(object generator, const int64_t[::1] high, int64_t[::1] out):
    """``out[:] = generator.integers(0, high)``."""
    cdef object bits = generator.bit_generator
    cdef bitgen_t *state = <bitgen_t *> PyCapsule_GetPointer(bits.capsule, "BitGenerator")
    cdef Py_ssize_t i
    for i in range(high.shape[0]):
        if high[i] < 1:
            raise ValueError("high <= 0")  # as numpy says it
    with bits.lock:
        for i in range(high.shape[0]):
            out[i] = <int64_t> random_bounded_uint64(state, 0, <uint64_t> (high[i] - 1), 0, 0)


cdef double pairwise(const double *a, Py_ssize_t n) noexcept nogil:
    """numpy's pairwise_sum over a contiguous array (numpy/_core/src/umath/loops_utils.h)."""
    cdef Py_ssize_t i, j, n2
    cdef double res
    cdef double r[8]
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i]
        return res
    if n <= 128:
        for j in range(8):
            r[j] = a[j]
        i = 8
        while i < n - (n % 8):
            for j in range(8):
                r[j] += a[i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += a[i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return pairwise(a, n2) + pairwise(a + n2, n - n2)


cdef inline void *data(cnp.ndarray a, int kind, str name) except NULL:
    """The array's memory, once its type and layout are checked (C: the checks cost next to
    nothing where typed memoryviews cost a microsecond each)."""
    if cnp.PyArray_TYPE(a) != kind or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise TypeError(f"{name}: a C-contiguous array of the plan's dtype")
    return cnp.PyArray_DATA(a)


def ages(
    double now,
    cnp.ndarray which,
    cnp.ndarray stamps,
    cnp.ndarray u,
    Py_ssize_t K,
    double limit,
    cnp.ndarray age_sum,
    cnp.ndarray age_count,
    cnp.ndarray valid,
    cnp.ndarray per_slot,
    cnp.ndarray column,
):
    """The ages of slots ``:K`` for samples ``u`` (``now`` less the time of the message each
    prediction came in; none, or older than ``limit``: not valid). Writes ``valid`` [B, K]
    uint8 (the caller reads it as [K, B] bools), adds each slot's ages and their count into
    ``age_sum`` and ``age_count``; returns (the sum of all ages, their count, the largest
    age, 0 for those not valid), as Plan.step computes them with numpy."""
    cdef const int32_t *w = <const int32_t *> data(which, cnp.NPY_INT32, "which")
    cdef const double *t = <const double *> data(stamps, cnp.NPY_FLOAT64, "stamps")
    cdef const int64_t *samples = <const int64_t *> data(u, cnp.NPY_INT64, "u")
    cdef double *sums = <double *> data(age_sum, cnp.NPY_FLOAT64, "age_sum")
    cdef int64_t *seen = <int64_t *> data(age_count, cnp.NPY_INT64, "age_count")
    cdef uint8_t *ok = <uint8_t *> data(valid, cnp.NPY_UINT8, "valid")
    cdef double *slot = <double *> data(per_slot, cnp.NPY_FLOAT64, "per_slot")
    cdef double *col = <double *> data(column, cnp.NPY_FLOAT64, "column")
    cdef Py_ssize_t B = cnp.PyArray_SIZE(u), cap = cnp.PyArray_DIM(which, 1), b, k
    cdef double a, biggest = 0.0, total
    cdef int64_t count = 0, n
    cdef bint first = True
    if (cnp.PyArray_SIZE(valid) != B * K or cnp.PyArray_SIZE(per_slot) < K or K > cap
            or cnp.PyArray_SIZE(column) < B or cnp.PyArray_SIZE(age_sum) < K
            or cnp.PyArray_SIZE(age_count) < K):
        raise ValueError("ages: arrays of the wrong size")
    with nogil:
        for k in range(K):
            slot[k] = 0.0
        for b in range(B):
            for k in range(K):
                a = now - t[w[samples[b] * cap + k]]
                if a == a and not (a > limit):
                    ok[b * K + k] = 1
                else:
                    ok[b * K + k] = 0
                    a = 0.0
                if first or a > biggest:
                    biggest, first = a, False
                if K == 1:
                    col[b] = a
                else:
                    slot[k] += a
        if K == 1:
            slot[0] = pairwise(col, B)
        for k in range(K):
            n = 0
            for b in range(B):
                n += ok[b * K + k]
            sums[k] += slot[k]
            seen[k] += n
            count += n
        total = pairwise(slot, K)
    return total, count, biggest
