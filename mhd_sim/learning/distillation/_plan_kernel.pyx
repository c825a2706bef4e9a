# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""A plan's hot path in C (plan_kernel.py says when it runs): a step's bounded draws and the
ages of the cached predictions it reads, and a message's writes into the cache, exact by
construction.

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


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define MHD_PREFETCH(p) __builtin_prefetch(p)
    #else
    #define MHD_PREFETCH(p) ((void)0)
    #endif
    """
    void MHD_PREFETCH(const void *p) noexcept nogil


cdef inline void *data(cnp.ndarray a, int kind, str name) except NULL:
    """The array's memory, once its type and layout are checked (C: the checks cost next to
    nothing where typed memoryviews cost a microsecond each)."""
    if cnp.PyArray_TYPE(a) != kind or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise TypeError(f"{name}: a C-contiguous array of the plan's dtype")
    return cnp.PyArray_DATA(a)


cdef int draw(object generator, const int64_t *high, int64_t *out, Py_ssize_t n) except -1:
    """``out[:n] = generator.integers(0, high[:n])``."""
    cdef Py_ssize_t i
    for i in range(n):
        if high[i] < 1:
            raise ValueError("high <= 0")  # as numpy says it
    cdef object bits = generator.bit_generator
    cdef bitgen_t *state = <bitgen_t *> PyCapsule_GetPointer(bits.capsule, "BitGenerator")
    with bits.lock:
        with nogil:
            for i in range(n):
                out[i] = <int64_t> random_bounded_uint64(state, 0, <uint64_t> (high[i] - 1), 0, 0)
    return 0


def integers(object generator, cnp.ndarray high, cnp.ndarray out):
    """``out[:] = generator.integers(0, high)``."""
    if cnp.PyArray_SIZE(out) != cnp.PyArray_SIZE(high):
        raise ValueError("integers: arrays of the wrong size")
    draw(generator, <const int64_t *> data(high, cnp.NPY_INT64, "high"),
         <int64_t *> data(out, cnp.NPY_INT64, "out"), cnp.PyArray_SIZE(high))


cdef struct Read:
    double total  # the sum of the ages read
    int64_t count  # how many were read
    double biggest  # the largest age (0 for those not read)


cdef Read read_ages(double now, const int32_t *w, Py_ssize_t cap, const double *t,
                    const int64_t *samples, Py_ssize_t B, Py_ssize_t K, double limit,
                    double *sums, int64_t *seen, uint8_t *ok, double *slot,
                    double *col) noexcept nogil:
    """The ages of slots ``:K`` for samples ``samples`` (``now`` less the time of the message
    each prediction came in; none, or older than ``limit``: not read). Writes ``ok`` [B, K]
    (the caller reads it as [K, B] bools) and adds each slot's ages and their count into
    ``sums`` and ``seen``, as Plan._ages does with numpy."""
    cdef Py_ssize_t b, k
    cdef double a
    cdef int64_t n
    cdef bint first = True
    cdef Read r
    r.biggest, r.count = 0.0, 0
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
            if first or a > r.biggest:
                r.biggest, first = a, False
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
        r.count += n
    r.total = pairwise(slot, K)
    return r


cdef inline int checked_sizes(Py_ssize_t B, Py_ssize_t K, cnp.ndarray which, cnp.ndarray valid,
                              cnp.ndarray per_slot, cnp.ndarray column, cnp.ndarray age_sum,
                              cnp.ndarray age_count) except -1:
    if (cnp.PyArray_NDIM(which) != 2 or cnp.PyArray_SIZE(valid) != B * K
            or cnp.PyArray_SIZE(per_slot) < K or K > cnp.PyArray_DIM(which, 1)
            or cnp.PyArray_SIZE(column) < B or cnp.PyArray_SIZE(age_sum) < K
            or cnp.PyArray_SIZE(age_count) < K):
        raise ValueError("ages: arrays of the wrong size")
    return 0


def step(
    object generator,
    cnp.ndarray high,
    cnp.ndarray pool,
    cnp.ndarray drawn,
    cnp.ndarray u,
    double now,
    cnp.ndarray which,
    cnp.ndarray stamps,
    Py_ssize_t K,
    double limit,
    cnp.ndarray age_sum,
    cnp.ndarray age_count,
    cnp.ndarray valid,
    cnp.ndarray per_slot,
    cnp.ndarray column,
):
    """A whole step of a plan that reads every slot, in one call: ``drawn[:] =
    generator.integers(0, high)`` (:func:`integers`), its last ``len(u)`` draws pick the
    public samples ``u[:] = pool[drawn[-len(u):]]``, then the ages of those (:func:`read_ages`):
    returns (the sum of the ages read, their count, the largest age, 0 for those not read).
    The cache rows the samples need are all requested before the ages read them: at 1,000
    agents the caches do not fit in the processor's, and the reads waited on memory one by
    one."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(high), B = cnp.PyArray_SIZE(u), i, j
    checked_sizes(B, K, which, valid, per_slot, column, age_sum, age_count)
    if cnp.PyArray_SIZE(drawn) != n or B > n:
        raise ValueError("step: arrays of the wrong size")
    cdef const int64_t *hi = <const int64_t *> data(high, cnp.NPY_INT64, "high")
    cdef const int64_t *p = <const int64_t *> data(pool, cnp.NPY_INT64, "pool")
    cdef int64_t *d = <int64_t *> data(drawn, cnp.NPY_INT64, "drawn")
    cdef int64_t *samples = <int64_t *> data(u, cnp.NPY_INT64, "u")
    cdef const int32_t *w = <const int32_t *> data(which, cnp.NPY_INT32, "which")
    cdef const double *t = <const double *> data(stamps, cnp.NPY_FLOAT64, "stamps")
    cdef double *sums = <double *> data(age_sum, cnp.NPY_FLOAT64, "age_sum")
    cdef int64_t *seen = <int64_t *> data(age_count, cnp.NPY_INT64, "age_count")
    cdef uint8_t *ok = <uint8_t *> data(valid, cnp.NPY_UINT8, "valid")
    cdef double *slot = <double *> data(per_slot, cnp.NPY_FLOAT64, "per_slot")
    cdef double *col = <double *> data(column, cnp.NPY_FLOAT64, "column")
    cdef Py_ssize_t cap = cnp.PyArray_DIM(which, 1), rows = cnp.PyArray_DIM(which, 0)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(pool), first = n - B
    for i in range(first, n):
        if hi[i] > size:
            raise ValueError("step: draws past the pool")
    draw(generator, hi, d, n)
    cdef bint outside = False
    cdef Read r
    with nogil:
        for i in range(B):
            j = p[d[first + i]]
            samples[i] = j
            if j < 0 or j >= rows:
                outside = True
            else:
                MHD_PREFETCH(&w[j * cap])  # in flight together, before the ages read them
    if outside:
        raise ValueError("step: a pool sample past the cache's rows")
    with nogil:
        r = read_ages(now, w, cap, t, samples, B, K, limit, sums, seen, ok, slot, col)
    return r.total, r.count, r.biggest


def store(
    cnp.ndarray which,
    Py_ssize_t k,
    cnp.ndarray ids,
    int32_t m,
    double produced,
    cnp.ndarray stamps,
    cnp.ndarray have,
    bint check,
    cnp.ndarray kept,
):
    """Plan.store's writes: slot ``k`` of each sample in ``ids`` takes message ``m`` (made at
    ``produced``), unless (``check``) the prediction it holds was made later; ``kept[i]``
    says whether sample ``ids[i]`` took it. Every sample in ``ids`` is marked in ``have``.
    Returns (how many took it, how many samples ``have`` gained)."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(ids), i
    cdef Py_ssize_t cap = cnp.PyArray_DIM(which, 1), rows = cnp.PyArray_DIM(which, 0)
    if (cnp.PyArray_NDIM(which) != 2 or k < 0 or k >= cap or cnp.PyArray_SIZE(kept) != n
            or cnp.PyArray_SIZE(have) != rows):
        raise ValueError("store: arrays of the wrong size")
    cdef int32_t *w = <int32_t *> data(which, cnp.NPY_INT32, "which")
    cdef const int64_t *s = <const int64_t *> data(ids, cnp.NPY_INT64, "ids")
    cdef const double *t = <const double *> data(stamps, cnp.NPY_FLOAT64, "stamps")
    cdef uint8_t *h = <uint8_t *> data(have, cnp.NPY_BOOL, "have")
    cdef uint8_t *ok = <uint8_t *> data(kept, cnp.NPY_UINT8, "kept")
    cdef int64_t taken = 0, gained = 0, j
    for i in range(n):
        if s[i] < 0 or s[i] >= rows:
            raise IndexError(f"store: sample {s[i]} past the cache's {rows} rows")
    with nogil:
        for i in range(n):
            j = s[i]
            ok[i] = not (check and t[w[j * cap + k]] > produced)
            if ok[i]:
                w[j * cap + k] = m
                taken += 1
            if not h[j]:
                h[j], gained = 1, gained + 1
    return taken, gained
