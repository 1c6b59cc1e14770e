/*
 * router.forwarding._gcc: the compiled twin of router.forwarding.gcc_delay.PyDelayDetector,
 * the delay-based half of the send-side bandwidth estimate (packet groups, trend line,
 * overuse detector; draft-ietf-rmcat-gcc-02 §5).
 *
 * Why: measured inside a live router under `regio bench sfu --load meeting`, the estimator's
 * per-feedback work cost ~85 us per TWCC feedback of ~56 packets (13 ms of every second of
 * router time): a loop over every acknowledged packet and, per closed group, the trend-line
 * update, in bytecode with a boxed float per operation; then as long again trimming the
 * acknowledged-bytes window one packet at a time. That window now lives here too (a ring of
 * doubles, not a deque of tuples made and freed per packet: still ~4 % of the router's busy
 * samples while it was a deque kept in Python).
 *
 * The Python class is the reference and the definition: the fields below are its fields, and
 * every floating-point operation is the one it does, in the same order, so both give the same
 * doubles bit for bit (the build turns floating-point contraction off: a fused multiply-add
 * would round differently). tests/forwarding/test_gcc_delay.py feeds both the same feedback
 * and compares every field after every call. The constants are passed in by the Python module
 * (make_detector), so they have one definition.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <math.h>
#include <string.h>

#define MAX_WINDOW 64
#define MAX_ACKED_LIMIT (1 << 20)
#define NORMAL 0
#define OVERUSE 1
#define UNDERUSE 2

typedef struct {
    PyObject_HEAD
    /* constants, from gcc_delay */
    double group_span, smoothing, gain, overuse_time, k_up, k_down;
    int window;
    /* the reference's fields */
    int state;
    int has_group, has_prev, has_first, has_overuse;
    double group[3]; /* first send, last send, last arrival */
    double prev[3];
    double accumulated, smoothed, first_arrival, threshold, overuse_since;
    /* the trend window (a ring, oldest at `start`) and its running fit (_TrendFit) */
    double tx[MAX_WINDOW], ty[MAX_WINDOW];
    int start, len;
    double x0, y0, sx, sy, sxx, sxy;
    long added;
    /* the acknowledged window (the reference's deque of (arrival, size)): a ring of
     * `ack_len` entries from `ack_head`, at most `max_acked`, growing as needed */
    double *ack_at;
    long long *ack_size;
    Py_ssize_t ack_head, ack_len, ack_cap, max_acked;
    long long ack_bytes;
} Detector;

static void
fit_include(Detector *d, double x, double y)
{
    x -= d->x0;
    y -= d->y0;
    d->sx += x;
    d->sy += y;
    d->sxx += x * x;
    d->sxy += x * y;
}

/* _TrendFit.add: append (px, py), dropping the oldest point of a full window. */
static void
fit_add(Detector *d, double px, double py)
{
    int w = d->window;
    if (d->len == w) {
        double ox = d->tx[d->start], oy = d->ty[d->start];
        ox -= d->x0;
        oy -= d->y0;
        d->sx -= ox;
        d->sy -= oy;
        d->sxx -= ox * ox;
        d->sxy -= ox * oy;
        d->tx[d->start] = px;
        d->ty[d->start] = py;
        d->start = (d->start + 1) % w;
    } else {
        int slot = (d->start + d->len) % w;
        d->tx[slot] = px;
        d->ty[slot] = py;
        d->len++;
    }
    d->added++;
    if (d->added >= w) {
        d->added = 0;
        d->x0 = d->tx[d->start];
        d->y0 = d->ty[d->start];
        d->sx = d->sy = d->sxx = d->sxy = 0.0;
        for (int i = 0; i < d->len; i++) {
            int slot = (d->start + i) % w;
            fit_include(d, d->tx[slot], d->ty[slot]);
        }
    } else {
        fit_include(d, px, py);
    }
}

/* _TrendFit.slope; -1 with ZeroDivisionError where Python's division would raise. */
static int
fit_slope(Detector *d, int n, double *slope)
{
    double dn = (double)n;
    double den = dn * d->sxx - d->sx * d->sx;
    if (den <= 1e-12 * dn * d->sxx) {
        *slope = 0.0;
        return 0;
    }
    if (den == 0.0) {
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return -1;
    }
    *slope = (dn * d->sxy - d->sx * d->sy) / den;
    return 0;
}

static int
detect(Detector *d, double modified, double t, double delta)
{
    double threshold = d->threshold;
    int state;
    if (modified > threshold) {
        if (!d->has_overuse) {
            d->overuse_since = t;
            d->has_overuse = 1;
        }
        state = t - d->overuse_since >= d->overuse_time ? OVERUSE : d->state;
    } else if (modified < -threshold) {
        d->has_overuse = 0;
        state = UNDERUSE;
    } else {
        d->has_overuse = 0;
        state = NORMAL;
    }
    double magnitude = fabs(modified);
    double k = magnitude < threshold ? d->k_down : d->k_up;
    if (magnitude - threshold < 15.0) {
        /* max(0.0, min(delta, 0.1)) and max(6.0, min(600.0, x)) as Python's min/max pick:
         * the first argument unless a later one compares strictly smaller/larger. */
        double step = 0.1 < delta ? 0.1 : delta;
        step = step > 0.0 ? step : 0.0;
        double step_ms = 1000.0 * step;
        threshold += k * (magnitude - threshold) * step_ms;
        double capped = threshold < 600.0 ? threshold : 600.0;
        d->threshold = capped > 6.0 ? capped : 6.0;
    }
    d->state = state;
    return state;
}

/* PyDelayDetector._close_group: the group's verdict, or -1 with an exception. */
static int
close_group(Detector *d)
{
    double *g = d->group;
    if (!d->has_prev) {
        memcpy(d->prev, g, sizeof d->prev);
        d->has_prev = 1;
        return d->state;
    }
    double send_delta = g[1] - d->prev[1];
    double arrival_delta = g[2] - d->prev[2];
    memcpy(d->prev, g, sizeof d->prev);
    d->accumulated += arrival_delta - send_delta;
    d->smoothed = d->smoothing * d->smoothed + (1.0 - d->smoothing) * d->accumulated;
    if (!d->has_first) {
        d->first_arrival = g[2];
        d->has_first = 1;
    }
    fit_add(d, g[2] - d->first_arrival, d->smoothed);
    if (d->len < d->window)
        return NORMAL;
    double slope;
    if (fit_slope(d, d->len, &slope) < 0)
        return -1;
    double modified = slope * (double)d->window * d->gain;
    return detect(d, modified, g[2], arrival_delta);
}

static int
Detector_init(Detector *d, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"group_span", "window", "smoothing", "gain", "overuse_time",
                            "k_up", "k_down", "threshold", "max_acked", NULL};
    double threshold;
    Py_ssize_t max_acked;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "diddddd" "dn:DelayDetector", names,
                                     &d->group_span, &d->window, &d->smoothing, &d->gain,
                                     &d->overuse_time, &d->k_up, &d->k_down, &threshold,
                                     &max_acked))
        return -1;
    if (d->window < 2 || d->window > MAX_WINDOW) {
        PyErr_Format(PyExc_ValueError, "DelayDetector window %d must be in 2..%d", d->window,
                     MAX_WINDOW);
        return -1;
    }
    if (max_acked < 1 || max_acked > MAX_ACKED_LIMIT) {
        PyErr_Format(PyExc_ValueError, "DelayDetector max_acked %zd must be in 1..%d",
                     max_acked, MAX_ACKED_LIMIT);
        return -1;
    }
    d->state = NORMAL;
    d->has_group = d->has_prev = d->has_first = d->has_overuse = 0;
    d->accumulated = d->smoothed = d->first_arrival = d->overuse_since = 0.0;
    d->threshold = threshold;
    d->start = d->len = 0;
    d->x0 = d->y0 = d->sx = d->sy = d->sxx = d->sxy = 0.0;
    d->added = 0;
    d->max_acked = max_acked;
    d->ack_head = d->ack_len = 0;
    d->ack_bytes = 0;
    return 0;
}

static void
Detector_dealloc(Detector *d)
{
    PyMem_Free(d->ack_at);
    PyMem_Free(d->ack_size);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static Py_ssize_t
ack_slot(const Detector *d, Py_ssize_t i)
{
    return (d->ack_head + i) % d->ack_cap;
}

/* The oldest acknowledged packet leaves the window. */
static void
ack_pop(Detector *d)
{
    d->ack_bytes -= d->ack_size[d->ack_head];
    d->ack_head = (d->ack_head + 1) % d->ack_cap;
    d->ack_len--;
}

/* Append (arrival, size), dropping the oldest first when the window is full (the reference's
 * order). 0, or -1 with MemoryError. */
static int
ack_push(Detector *d, double arrival, long long size)
{
    if (d->ack_len >= d->max_acked)
        ack_pop(d);
    if (d->ack_len == d->ack_cap) {
        Py_ssize_t cap = d->ack_cap ? 2 * d->ack_cap : 256;
        if (cap > d->max_acked)
            cap = d->max_acked;
        double *at = PyMem_Malloc((size_t)cap * sizeof(double));
        long long *sizes = PyMem_Malloc((size_t)cap * sizeof(long long));
        if (at == NULL || sizes == NULL) {
            PyMem_Free(at);
            PyMem_Free(sizes);
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < d->ack_len; i++) {
            at[i] = d->ack_at[ack_slot(d, i)];
            sizes[i] = d->ack_size[ack_slot(d, i)];
        }
        PyMem_Free(d->ack_at);
        PyMem_Free(d->ack_size);
        d->ack_at = at;
        d->ack_size = sizes;
        d->ack_cap = cap;
        d->ack_head = 0;
    }
    Py_ssize_t slot = (d->ack_head + d->ack_len) % d->ack_cap;
    d->ack_at[slot] = arrival;
    d->ack_size[slot] = size;
    d->ack_len++;
    d->ack_bytes += size;
    return 0;
}

/* Drop what arrived more than `window` before the newest from the front (the reference's
 * trim loop). */
static void
trim_acked(Detector *d, double window)
{
    if (d->ack_len == 0)
        return;
    double limit = d->ack_at[ack_slot(d, d->ack_len - 1)] - window;
    while (d->ack_len > 0 && d->ack_at[d->ack_head] < limit)
        ack_pop(d);
}

/* One (send, arrival, size) result of feed(): the reference loop's body. 0, or -1 with an
 * exception. */
static int
feed_one(Detector *d, PyObject *item, int *signal, long long *lost)
{
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "feed(): each result must be a (send, arrival, size) tuple");
        return -1;
    }
    PyObject *arrival_obj = PyTuple_GET_ITEM(item, 1);
    if (arrival_obj == Py_None) {
        (*lost)++;
        return 0;
    }
    long long size = PyLong_AsLongLong(PyTuple_GET_ITEM(item, 2));
    double send = PyFloat_AsDouble(PyTuple_GET_ITEM(item, 0));
    double arrival = PyFloat_AsDouble(arrival_obj);
    if (PyErr_Occurred())
        return -1;
    if (ack_push(d, arrival, size) < 0)
        return -1;
    double *g = d->group;
    if (!d->has_group || send - g[0] > d->group_span) {
        *signal = d->state;
        if (d->has_group && (*signal = close_group(d)) < 0)
            return -1;
        g[0] = g[1] = send;
        g[2] = arrival;
        d->has_group = 1;
        return 0;
    }
    if (send > g[1])
        g[1] = send;
    if (arrival > g[2])
        g[2] = arrival;
    *signal = d->state;
    return 0;
}

/* feed(results, window) -> (signal, lost): see gcc_delay.DelayDetector. */
static PyObject *
Detector_feed(Detector *d, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "feed() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    double window = PyFloat_AsDouble(args[1]);
    if (window == -1.0 && PyErr_Occurred())
        return NULL;
    PyObject *results = PySequence_Fast(args[0], "feed(): results must be a sequence");
    if (results == NULL)
        return NULL;
    int signal = NORMAL;
    long long lost = 0;
    /* The size is read again every round and each item is held while it is used: a number's
     * own conversion may run Python code that changes `results`. */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(results); i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(results, i);
        Py_INCREF(item);
        int status = feed_one(d, item, &signal, &lost);
        Py_DECREF(item);
        if (status < 0) {
            Py_DECREF(results);
            return NULL;
        }
    }
    Py_DECREF(results);
    trim_acked(d, window);
    return Py_BuildValue("(iL)", signal, lost);
}

/* acked_bitrate() -> float: see gcc_delay.DelayDetector. */
static PyObject *
Detector_acked_bitrate(Detector *d, PyObject *Py_UNUSED(ignored))
{
    if (d->ack_len < 2)
        return PyFloat_FromDouble(0.0);
    double span = d->ack_at[ack_slot(d, d->ack_len - 1)] - d->ack_at[d->ack_head];
    if (0.1 > span) /* Python's max(span, 0.1), NaN included */
        span = 0.1;
    return PyFloat_FromDouble(8.0 * (double)d->ack_bytes / span);
}

static PyObject *
optional(int present, double value)
{
    if (!present)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(value);
}

static PyObject *
triple(int present, const double *v)
{
    if (!present)
        Py_RETURN_NONE;
    return Py_BuildValue("(ddd)", v[0], v[1], v[2]);
}

static PyObject *
Detector_fields(Detector *d, PyObject *Py_UNUSED(ignored))
{
    PyObject *trend = PyTuple_New(d->len);
    if (trend == NULL)
        return NULL;
    for (int i = 0; i < d->len; i++) {
        int slot = (d->start + i) % d->window;
        PyObject *point = Py_BuildValue("(dd)", d->tx[slot], d->ty[slot]);
        if (point == NULL) {
            Py_DECREF(trend);
            return NULL;
        }
        PyTuple_SET_ITEM(trend, i, point);
    }
    PyObject *acked = PyTuple_New(d->ack_len);
    if (acked == NULL) {
        Py_DECREF(trend);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < d->ack_len; i++) {
        Py_ssize_t slot = ack_slot(d, i);
        PyObject *entry = Py_BuildValue("(dL)", d->ack_at[slot], d->ack_size[slot]);
        if (entry == NULL) {
            Py_DECREF(trend);
            Py_DECREF(acked);
            return NULL;
        }
        PyTuple_SET_ITEM(acked, i, entry);
    }
    return Py_BuildValue(
        "{s:i,s:N,s:N,s:d,s:d,s:N,s:d,s:N,s:N,s:(ddddddl),s:N,s:L}",
        "state", d->state,
        "group", triple(d->has_group, d->group),
        "prev_group", triple(d->has_prev, d->prev),
        "accumulated", d->accumulated,
        "smoothed", d->smoothed,
        "first_arrival", optional(d->has_first, d->first_arrival),
        "threshold", d->threshold,
        "overuse_since", optional(d->has_overuse, d->overuse_since),
        "trend", trend,
        "fit", d->x0, d->y0, d->sx, d->sy, d->sxx, d->sxy, d->added,
        "acked", acked, "acked_bytes", d->ack_bytes);
}

static PyMethodDef Detector_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))Detector_feed, METH_FASTCALL,
     "feed(results, window) -> (signal, lost); see gcc_delay.DelayDetector."},
    {"acked_bitrate", (PyCFunction)Detector_acked_bitrate, METH_NOARGS,
     "acked_bitrate() -> float; see gcc_delay.DelayDetector."},
    {"fields", (PyCFunction)Detector_fields, METH_NOARGS,
     "Every internal field, named as in gcc_delay.PyDelayDetector.fields()."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Detector_members[] = {
    {"state", T_INT, offsetof(Detector, state), READONLY,
     "NORMAL (0), OVERUSE (1) or UNDERUSE (2)."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject DetectorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "router.forwarding._gcc.DelayDetector",
    .tp_doc = "Compiled twin of router.forwarding.gcc_delay.PyDelayDetector.",
    .tp_basicsize = sizeof(Detector),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Detector_init,
    .tp_dealloc = (destructor)Detector_dealloc,
    .tp_methods = Detector_methods,
    .tp_members = Detector_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "router.forwarding._gcc",
    "Compiled twin of router.forwarding.gcc_delay's delay detector.", -1, NULL,
};

PyMODINIT_FUNC
PyInit__gcc(void)
{
    if (PyType_Ready(&DetectorType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&DetectorType);
    if (PyModule_AddObject(m, "DelayDetector", (PyObject *)&DetectorType) < 0) {
        Py_DECREF(&DetectorType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
