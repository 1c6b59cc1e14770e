/*
 * router.forwarding._gcc: the compiled twin of router.forwarding.gcc_delay.PyDelayDetector,
 * the delay-based half of the send-side bandwidth estimate (packet groups, trend line,
 * overuse detector; draft-ietf-rmcat-gcc-02 §5).
 *
 * Why: measured inside a live router under `regio bench sfu --load meeting`, the estimator's
 * per-feedback work cost ~85 us per TWCC feedback of ~56 packets (13 ms of every second of
 * router time): a loop over every acknowledged packet and, per closed group, the trend-line
 * update, in bytecode with a boxed float per operation; then as long again trimming the
 * acknowledged-bytes window one packet at a time.
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
                            "k_up", "k_down", "threshold", NULL};
    double threshold;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "diddddd" "d:DelayDetector", names,
                                     &d->group_span, &d->window, &d->smoothing, &d->gain,
                                     &d->overuse_time, &d->k_up, &d->k_down, &threshold))
        return -1;
    if (d->window < 2 || d->window > MAX_WINDOW) {
        PyErr_Format(PyExc_ValueError, "DelayDetector window %d must be in 2..%d", d->window,
                     MAX_WINDOW);
        return -1;
    }
    d->state = NORMAL;
    d->has_group = d->has_prev = d->has_first = d->has_overuse = 0;
    d->accumulated = d->smoothed = d->first_arrival = d->overuse_since = 0.0;
    d->threshold = threshold;
    d->start = d->len = 0;
    d->x0 = d->y0 = d->sx = d->sy = d->sxx = d->sxy = 0.0;
    d->added = 0;
    return 0;
}

/* The first element of acked[index], a (arrival, size) pair; -1 with an exception. */
static int
pair_item(PyObject *acked, Py_ssize_t index, int which, PyObject **out)
{
    PyObject *pair = PySequence_GetItem(acked, index);
    if (pair == NULL)
        return -1;
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        Py_DECREF(pair);
        PyErr_SetString(PyExc_TypeError, "feed(): acked must hold (arrival, size) tuples");
        return -1;
    }
    *out = PyTuple_GET_ITEM(pair, which);
    Py_INCREF(*out);
    Py_DECREF(pair);
    return 0;
}

/* Drop what arrived more than `window` before the newest from acked's front (the reference's
 * trim loop); adds the bytes dropped to *removed. */
static int
trim_acked(PyObject *acked, double window, long long *removed)
{
    Py_ssize_t n = PySequence_Size(acked);
    if (n < 0)
        return -1;
    if (n == 0)
        return 0;
    PyObject *newest;
    if (pair_item(acked, n - 1, 0, &newest) < 0)
        return -1;
    double limit = PyFloat_AsDouble(newest) - window;
    Py_DECREF(newest);
    if (PyErr_Occurred())
        return -1;
    PyObject *popleft = NULL;
    int status = -1;
    while (n > 0) {
        PyObject *oldest;
        if (pair_item(acked, 0, 0, &oldest) < 0)
            goto done;
        double arrival = PyFloat_AsDouble(oldest);
        Py_DECREF(oldest);
        if (PyErr_Occurred())
            goto done;
        if (!(arrival < limit))
            break;
        if (popleft == NULL && (popleft = PyObject_GetAttrString(acked, "popleft")) == NULL)
            goto done;
        PyObject *dropped = PyObject_CallNoArgs(popleft);
        if (dropped == NULL)
            goto done;
        long long size = -1;
        if (PyTuple_Check(dropped) && PyTuple_GET_SIZE(dropped) == 2)
            size = PyLong_AsLongLong(PyTuple_GET_ITEM(dropped, 1));
        else
            PyErr_SetString(PyExc_TypeError, "feed(): acked must hold (arrival, size) tuples");
        Py_DECREF(dropped);
        if (size == -1 && PyErr_Occurred())
            goto done;
        *removed += size;
        n--;
    }
    status = 0;
done:
    Py_XDECREF(popleft);
    return status;
}

/* One (send, arrival, size) result of feed(): the reference loop's body. 0, or -1 with an
 * exception. */
static int
feed_one(Detector *d, PyObject *item, PyObject *append, int *signal, long long *lost,
         long long *acked_bytes)
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
    PyObject *size_obj = PyTuple_GET_ITEM(item, 2);
    long long size = PyLong_AsLongLong(size_obj);
    double send = PyFloat_AsDouble(PyTuple_GET_ITEM(item, 0));
    double arrival = PyFloat_AsDouble(arrival_obj);
    if (PyErr_Occurred())
        return -1;
    PyObject *pair = PyTuple_Pack(2, arrival_obj, size_obj);
    if (pair == NULL)
        return -1;
    PyObject *appended = PyObject_CallOneArg(append, pair);
    Py_DECREF(pair);
    if (appended == NULL)
        return -1;
    Py_DECREF(appended);
    *acked_bytes += size;
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

/* feed(results, acked, window) -> (signal, lost, bytes): see gcc_delay.DelayDetector. */
static PyObject *
Detector_feed(Detector *d, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "feed() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    double window = PyFloat_AsDouble(args[2]);
    if (window == -1.0 && PyErr_Occurred())
        return NULL;
    PyObject *results = PySequence_Fast(args[0], "feed(): results must be a sequence");
    if (results == NULL)
        return NULL;
    PyObject *append = PyObject_GetAttrString(args[1], "append");
    if (append == NULL) {
        Py_DECREF(results);
        return NULL;
    }
    int signal = NORMAL;
    long long lost = 0, acked_bytes = 0;
    /* The size is read again every round and each item is held while it is used: `append`
     * (and a number's own conversion) may run Python code that changes `results`. */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(results); i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(results, i);
        Py_INCREF(item);
        int status = feed_one(d, item, append, &signal, &lost, &acked_bytes);
        Py_DECREF(item);
        if (status < 0)
            goto fail;
    }
    long long removed = 0;
    if (trim_acked(args[1], window, &removed) < 0)
        goto fail;
    Py_DECREF(append);
    Py_DECREF(results);
    return Py_BuildValue("(iLL)", signal, lost, acked_bytes - removed);
fail:
    Py_DECREF(append);
    Py_DECREF(results);
    return NULL;
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
    return Py_BuildValue(
        "{s:i,s:N,s:N,s:d,s:d,s:N,s:d,s:N,s:N,s:(ddddddl)}",
        "state", d->state,
        "group", triple(d->has_group, d->group),
        "prev_group", triple(d->has_prev, d->prev),
        "accumulated", d->accumulated,
        "smoothed", d->smoothed,
        "first_arrival", optional(d->has_first, d->first_arrival),
        "threshold", d->threshold,
        "overuse_since", optional(d->has_overuse, d->overuse_since),
        "trend", trend,
        "fit", d->x0, d->y0, d->sx, d->sy, d->sxx, d->sxy, d->added);
}

static PyMethodDef Detector_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))Detector_feed, METH_FASTCALL,
     "feed(results, acked, window) -> (signal, lost, bytes); see gcc_delay.DelayDetector."},
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
