/*
 * router.rtp._twcc: compiled twins of the transport-cc feedback codec's per-packet loops
 * (router/rtp/twcc.py) and of the router's per-feedback delta walk
 * (router.forwarding.publisher_feedback.TwccRecorder):
 *
 *   decode_fci(body, count)  the chunk and receive-delta walk of TransportCc.decode;
 *   encode_fci(statuses, deltas)  the chunking, delta and padding part of TransportCc.build;
 *   arrival_deltas(arrivals, base, stop)  TwccRecorder's arrival times -> reference time,
 *                 statuses and deltas (TransportCc.from_deltas over its tick loop).
 *
 * Why: measured in a live router under `regio bench sfu --load meeting` (py-spy), building the
 * feedback the router sends its publishers (~80 a second, ~50 packets each) and decoding the
 * feedback its subscribers send (~160 a second) cost ~9 % of the router's busy time, nearly
 * all of it these loops run as bytecode, one boxed int per status.
 *
 * The Python code is the reference and the definition. These functions never raise for bad
 * input: they return None for anything the reference would refuse (truncated chunks, a delta
 * out of range, a status over 3, a value of an unexpected type), and the caller then runs the
 * reference, which raises its precise error. tests/rtp/test_twcc_compiled.py runs both on the
 * same inputs, arbitrary bytes included.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_RUN 0x1FFF
#define TICK_US 250
#define REF_US 64000
/* Exactly representable in a double, so int -> double -> division rounds as Python's
 * int / int does. */
#define EXACT_LIMIT (1LL << 53)

/* decode_fci(body, count) -> (statuses: bytes, deltas: tuple[int, ...]) | None
 *
 * body: the feedback after its RTCP header (sender SSRC first, chunks from byte 16), any
 * buffer; count: the packet status count. */
static PyObject *
decode_fci(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "decode_fci() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_ssize_t count = PyLong_AsSsize_t(args[1]);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    if (count < 0 || count > 0xFFFF)
        Py_RETURN_NONE;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *body = (const unsigned char *)view.buf;
    Py_ssize_t end = view.len, pos = 16;
    PyObject *result = NULL, *statuses = NULL, *deltas = NULL;
    if (end < 16)
        goto refuse;
    statuses = PyBytes_FromStringAndSize(NULL, count);
    if (statuses == NULL)
        goto done;
    unsigned char *status = (unsigned char *)PyBytes_AS_STRING(statuses);
    Py_ssize_t have = 0, small = 0, large = 0;
    while (have < count) {
        if (pos + 2 > end)
            goto refuse;
        unsigned chunk = ((unsigned)body[pos] << 8) | body[pos + 1];
        Py_ssize_t left = count - have;
        if (!(chunk & 0x8000)) {
            Py_ssize_t run = chunk & MAX_RUN;
            if (run > left)
                run = left;
            memset(status + have, (int)(chunk >> 13), (size_t)run);
            have += run;
        } else if (!(chunk & 0x4000)) {
            Py_ssize_t n = left < 14 ? left : 14;
            for (Py_ssize_t k = 0; k < n; k++)
                status[have++] = (chunk >> (13 - k)) & 1;
        } else {
            Py_ssize_t n = left < 7 ? left : 7;
            for (Py_ssize_t k = 0; k < n; k++)
                status[have++] = (chunk >> (12 - 2 * k)) & 3;
        }
        pos += 2;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        small += status[i] == 1;
        large += status[i] == 2;
    }
    if (pos + small + 2 * large > end)
        goto refuse;
    deltas = PyTuple_New(small + large);
    if (deltas == NULL)
        goto done;
    Py_ssize_t d = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        long value;
        if (status[i] == 1) {
            value = body[pos];
            pos += 1;
        } else if (status[i] == 2) {
            value = (int16_t)(((unsigned)body[pos] << 8) | body[pos + 1]);
            pos += 2;
        } else {
            continue;
        }
        PyObject *item = PyLong_FromLong(value);
        if (item == NULL)
            goto done;
        PyTuple_SET_ITEM(deltas, d++, item);
    }
    if (end - pos > 3)
        goto refuse;
    result = PyTuple_Pack(2, statuses, deltas);
    goto done;
refuse:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(statuses);
    Py_XDECREF(deltas);
    PyBuffer_Release(&view);
    return result;
}

static Py_ssize_t
run_length(const unsigned char *status, Py_ssize_t n, Py_ssize_t i)
{
    Py_ssize_t end = i + MAX_RUN < n ? i + MAX_RUN : n, j = i + 1;
    while (j < end && status[j] == status[i])
        j++;
    return j - i;
}

static void
put16(unsigned char **out, unsigned value)
{
    (*out)[0] = (unsigned char)(value >> 8);
    (*out)[1] = (unsigned char)value;
    *out += 2;
}

/* encode_fci(statuses, deltas) -> bytes | None
 *
 * The packet chunks (the reference's greedy choice, chunk for chunk), the receive deltas and
 * the zero padding that follow the 16-byte fixed part; None if a status is over 3, the deltas
 * do not match the statuses, or a delta does not fit its symbol. */
static PyObject *
encode_fci(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "encode_fci() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0]) || !PyTuple_CheckExact(args[1]))
        Py_RETURN_NONE;
    const unsigned char *status = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]), with_delta = 0, delta_bytes = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (status[i] > 3)
            Py_RETURN_NONE;
        if (status[i] == 1 || status[i] == 2) {
            with_delta++;
            delta_bytes += status[i];
        }
    }
    if (with_delta != PyTuple_GET_SIZE(args[1]))
        Py_RETURN_NONE;
    /* At most one chunk per status, two bytes each. */
    Py_ssize_t room = 2 * n + delta_bytes + 3;
    unsigned char *buffer = PyMem_Malloc(room > 0 ? (size_t)room : 1);
    if (buffer == NULL)
        return PyErr_NoMemory();
    unsigned char *out = buffer;
    Py_ssize_t i = 0;
    while (i < n) {
        Py_ssize_t run = run_length(status, n, i);
        if (run >= 14 || i + run == n) {
            put16(&out, ((unsigned)status[i] << 13) | (unsigned)run);
            i += run;
            continue;
        }
        Py_ssize_t width = n - i < 14 ? n - i : 14;
        int binary = 1;
        for (Py_ssize_t k = 0; k < width; k++)
            binary &= status[i + k] <= 1;
        if (binary) {
            unsigned chunk = 0x8000;
            for (Py_ssize_t k = 0; k < width; k++)
                chunk |= (unsigned)status[i + k] << (13 - k);
            put16(&out, chunk);
            i += width;
        } else if (run >= 7) {
            put16(&out, ((unsigned)status[i] << 13) | (unsigned)run);
            i += run;
        } else {
            width = n - i < 7 ? n - i : 7;
            unsigned chunk = 0xC000;
            for (Py_ssize_t k = 0; k < width; k++)
                chunk |= (unsigned)status[i + k] << (12 - 2 * k);
            put16(&out, chunk);
            i += width;
        }
    }
    Py_ssize_t d = 0;
    for (i = 0; i < n; i++) {
        if (status[i] != 1 && status[i] != 2)
            continue;
        PyObject *item = PyTuple_GET_ITEM(args[1], d++);
        if (!PyLong_CheckExact(item))
            goto refuse;
        int overflow;
        long value = PyLong_AsLongAndOverflow(item, &overflow);
        if (overflow || (value == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            goto refuse;
        }
        if (status[i] == 1) {
            if (value < 0 || value > 255)
                goto refuse;
            *out++ = (unsigned char)value;
        } else {
            if (value < -0x8000 || value > 0x7FFF)
                goto refuse;
            put16(&out, (unsigned)value & 0xFFFF);
        }
    }
    while ((out - buffer) % 4)
        *out++ = 0;
    PyObject *result = PyBytes_FromStringAndSize((const char *)buffer, out - buffer);
    PyMem_Free(buffer);
    return result;
refuse:
    PyMem_Free(buffer);
    Py_RETURN_NONE;
}

/* Python's int(t * 1e6) for a float t: 0 with *us set, or 1 if it would not be exact here
 * (not a float, not finite, or beyond the exact range). */
static int
microseconds(PyObject *value, long long *us)
{
    if (!PyFloat_CheckExact(value))
        return 1;
    double scaled = PyFloat_AS_DOUBLE(value) * 1e6;
    if (!(scaled > -(double)EXACT_LIMIT && scaled < (double)EXACT_LIMIT))
        return 1;
    *us = (long long)scaled; /* truncation toward zero, as int() */
    return 0;
}

/* Python's a // b for b > 0. */
static long long
floor_div(long long a, long long b)
{
    long long q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* arrival_deltas(arrivals, base, stop) -> (reference, statuses, deltas) | None
 *
 * TwccRecorder's feedback walk over extended sequence numbers base..stop-1 of `arrivals`
 * (dict: int -> float arrival seconds; base must be present): the reference time in 64 ms units
 * (not yet wrapped), then one status per number (0 missing, 1 a delta of 0..255 ticks, 2
 * otherwise) and one delta per received number in 250 us ticks, each relative to the previous
 * and clamped to 16 bits, the rounding error carried. None if a value is not a float or a
 * delta would not be computed exactly as the reference computes it. */
static PyObject *
arrival_deltas(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "arrival_deltas() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *arrivals = args[0];
    if (!PyDict_CheckExact(arrivals))
        Py_RETURN_NONE;
    long long base = PyLong_AsLongLong(args[1]), stop = PyLong_AsLongLong(args[2]);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (stop <= base || stop - base > 0xFFFF || base > LLONG_MAX - 0xFFFF)
        Py_RETURN_NONE;
    Py_ssize_t n = (Py_ssize_t)(stop - base);
    PyObject *result = NULL, *statuses = NULL, *deltas = NULL, *key = NULL;
    long *ticks_of = PyMem_Malloc((size_t)n * sizeof(long));
    if (ticks_of == NULL)
        return PyErr_NoMemory();
    statuses = PyBytes_FromStringAndSize(NULL, n);
    if (statuses == NULL)
        goto done;
    unsigned char *status = (unsigned char *)PyBytes_AS_STRING(statuses);
    long long reference = 0, prev = 0;
    Py_ssize_t received = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        key = PyLong_FromLongLong(base + i);
        if (key == NULL)
            goto done;
        PyObject *arrival = PyDict_GetItemWithError(arrivals, key);
        Py_CLEAR(key);
        if (arrival == NULL) {
            if (PyErr_Occurred())
                goto done;
            if (i == 0)
                goto refuse; /* the reference would raise KeyError */
            status[i] = 0;
            continue;
        }
        long long us;
        if (microseconds(arrival, &us))
            goto refuse;
        if (i == 0) {
            reference = floor_div(us, REF_US);
            prev = reference * REF_US;
        }
        long long diff = us - prev;
        if (diff <= -EXACT_LIMIT || diff >= EXACT_LIMIT)
            goto refuse;
        /* round() of the true quotient: both exact doubles, so one correctly rounded
         * division, then round-half-to-even as Python's round(). */
        double ticks = nearbyint((double)diff / (double)TICK_US);
        long t = ticks < -0x8000 ? -0x8000 : ticks > 0x7FFF ? 0x7FFF : (long)ticks;
        prev += (long long)t * TICK_US;
        status[i] = (t >= 0 && t <= 255) ? 1 : 2;
        ticks_of[received++] = t;
    }
    deltas = PyTuple_New(received);
    if (deltas == NULL)
        goto done;
    for (Py_ssize_t d = 0; d < received; d++) {
        PyObject *item = PyLong_FromLong(ticks_of[d]);
        if (item == NULL)
            goto done;
        PyTuple_SET_ITEM(deltas, d, item);
    }
    result = Py_BuildValue("(LOO)", reference, statuses, deltas);
    goto done;
refuse:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(key);
    Py_XDECREF(statuses);
    Py_XDECREF(deltas);
    PyMem_Free(ticks_of);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_fci", (PyCFunction)(void (*)(void))decode_fci, METH_FASTCALL,
     "decode_fci(body, count) -> (statuses, deltas) | None; see TransportCc.decode."},
    {"encode_fci", (PyCFunction)(void (*)(void))encode_fci, METH_FASTCALL,
     "encode_fci(statuses, deltas) -> bytes | None; see TransportCc.build."},
    {"arrival_deltas", (PyCFunction)(void (*)(void))arrival_deltas, METH_FASTCALL,
     "arrival_deltas(arrivals, base, stop) -> (reference, statuses, deltas) | None; see "
     "TwccRecorder."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "router.rtp._twcc",
    "Compiled twins of the transport-cc feedback codec's loops (router/rtp/twcc.py).", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__twcc(void)
{
    return PyModule_Create(&module);
}
