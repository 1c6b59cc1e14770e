/*
 * router.forwarding._fanout: compiled twins of two forwarding-core loops, each with its Python
 * reference kept in the tree and tested against it on the same inputs
 * (tests/forwarding/test_fanout.py):
 *
 *   fan_out       the per-subscriber loop of router.forwarding.routing.forward (one incoming
 *                 RTP packet -> one rewritten copy per subscriber);
 *   twcc_results  SubscriberLink.on_twcc's walk over one TWCC feedback (outside probes);
 *   read_transport_seq  router.forwarding.transport_seq.py_read_transport_seq (a publisher's
 *                 transport-wide sequence number, once per packet it sends; ~2 us each in the
 *                 live router as bytecode).
 *
 * Why: measured inside a live router under `regio bench sfu --load meeting`, the fan-out loop
 * cost ~4 us per copy (14 of the 19 us forward took per incoming packet), against 0.7 us in a
 * hot-cache micro-benchmark: bytecode, boxed intermediates and a temporary header object per
 * copy, all competing for caches the kernel's socket work has just flushed. `regio bench
 * codec` (hot): 10 subscribers 10.4 -> 6.5 us per incoming packet, 50 subscribers 36 -> 17.
 *
 * fan_out handles the steady state and nothing else. Whenever a subscription needs anything
 * the common path does not do, it stops and says why, and Python does that one step with the
 * reference code (router.forwarding.routing._copy), then calls again:
 *
 *   NEED_TW_TAIL  the transport-cc tail for a mapping with an id table (or a malformed
 *                 extension block) is not prepared yet (Python computes it into tw_tails,
 *                 once per mapping and packet). The usual mappings - no id table, or one over
 *                 a one-byte-form block - get theirs computed here, pointing into the packet,
 *                 with the ids mapped in each copy (local_transport_tail);
 *   NEED_TAIL     the same for a rewritten tail (ids mapped, abs-send-time added);
 *   SLOW          anything else: a new epoch (re-anchoring), simulcast state, a packet older
 *                 than the subscription's start, a table or ring of an unexpected shape, a
 *                 number that does not fit 64 bits. Python handles this subscriber whole.
 *
 * So no decision lives only here: every state change is one the reference makes, and the tests
 * compare the output bytes and every counter and field either path touches.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define DONE 0
#define NEED_TW_TAIL 1
#define NEED_TAIL 2
#define SLOW 3

/*
 * Fields are read and written straight from their __slots__ storage, as CPython's own
 * specialised LOAD_ATTR_SLOT/STORE_ATTR_SLOT do: the generic PyObject_GetAttr path (type
 * lookup, descriptor call) cost more per field than the bytecode it replaces. A layout is
 * resolved once per exact type from its member descriptors; an object of any other type, a
 * field that is not a plain writable object slot, or an unset one sends the subscription to
 * the slow path.
 */
enum {
    F_EPOCH, F_SIM, F_MIN_EXT, F_B1_TABLE, F_SEQ_OFFSET, F_TS_OFFSET, F_TW, F_TW_KEY,
    F_TAIL_KEY, F_SSRC, F_TW_ID, F_TW_HDR, F_SUBSCRIBER, F_LAST_OUT_EXT, F_LAST_OUT_TS,
    F_LAST_OUT_TIME, F_PACKETS, F_OCTETS, DOWNSTREAM_FIELDS
};
static const char *downstream_names[DOWNSTREAM_FIELDS] = {
    "epoch", "sim", "min_ext", "b1_table", "seq_offset", "ts_offset", "tw", "tw_key",
    "tail_key", "ssrc", "tw_id", "tw_hdr", "subscriber", "last_out_ext", "last_out_ts",
    "last_out_time", "packets", "octets",
};
enum { L_SEQ, L_SENT_AT, L_SIZES, LINK_FIELDS };
static const char *link_names[LINK_FIELDS] = {"seq", "sent_at", "sizes"};

#define MAX_FIELDS DOWNSTREAM_FIELDS

typedef struct {
    PyTypeObject *type; /* strong reference; NULL until resolved */
    Py_ssize_t offset[MAX_FIELDS];
} Layout;

static Layout downstream_layout, link_layout;
static PyObject *one;

/* 1: `layout` describes `type`; 0: it cannot (slow path); -1: error. */
static int
resolve(Layout *layout, PyTypeObject *type, const char **names, int count)
{
    if (layout->type == type)
        return 1;
    Layout fresh = {NULL, {0}};
    for (int i = 0; i < count; i++) {
        PyObject *name = PyUnicode_InternFromString(names[i]);
        if (name == NULL)
            return -1;
        PyObject *descr = _PyType_Lookup(type, name); /* borrowed */
        Py_DECREF(name);
        if (descr == NULL || Py_TYPE(descr) != &PyMemberDescr_Type)
            return 0;
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX || (member->flags & READONLY))
            return 0;
        fresh.offset[i] = member->offset;
    }
    Py_INCREF(type);
    Py_XDECREF(layout->type);
    *layout = fresh;
    layout->type = type;
    return 1;
}

static inline PyObject *
field(PyObject *obj, const Layout *layout, int index) /* borrowed; NULL when unset */
{
    return *(PyObject **)((char *)obj + layout->offset[index]);
}

static inline void
store(PyObject *obj, const Layout *layout, int index, PyObject *value) /* new reference kept */
{
    PyObject **slot = (PyObject **)((char *)obj + layout->offset[index]);
    PyObject *old = *slot;
    Py_INCREF(value);
    *slot = value;
    Py_XDECREF(old);
}

/* An int field: 1 read; 0 unset, not an int or beyond 64 bits (slow path, nothing raised). */
static int
read_ll(PyObject *obj, const Layout *layout, int index, long long *value)
{
    PyObject *x = field(obj, layout, index);
    if (x == NULL || !PyLong_CheckExact(x))
        return 0;
    int overflow = 0;
    *value = PyLong_AsLongLongAndOverflow(x, &overflow);
    return overflow ? 0 : 1;
}

static int
write_ll(PyObject *obj, const Layout *layout, int index, long long value)
{
    PyObject *x = PyLong_FromLongLong(value);
    if (x == NULL)
        return -1;
    store(obj, layout, index, x);
    Py_DECREF(x);
    return 0;
}

/* obj.field += delta (Python's arbitrary precision, like the reference). */
static int
add_to(PyObject *obj, const Layout *layout, int index, PyObject *delta)
{
    PyObject *sum = PyNumber_Add(field(obj, layout, index), delta);
    if (sum == NULL)
        return -1;
    store(obj, layout, index, sum);
    Py_DECREF(sum);
    return 0;
}

static void
put16(unsigned char *p, unsigned long v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void
put32(unsigned char *p, unsigned long long v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* The 12-byte fixed header of one copy. */
static void
put_header(unsigned char *p, long long b0, long long b1, long long seq, long long ts,
           long long ssrc)
{
    p[0] = (unsigned char)b0;
    p[1] = (unsigned char)b1;
    put16(p + 2, (unsigned long)(seq & 0xFFFF));
    put32(p + 4, (unsigned long long)ts);
    put32(p + 8, (unsigned long long)ssrc);
}

/* Small-int fields of a prepared tail tuple; 0 if the item is not an int in [lo, hi]. */
static int
tuple_int(PyObject *tuple, Py_ssize_t index, long lo, long hi, long *value)
{
    PyObject *x = PyTuple_GET_ITEM(tuple, index);
    if (!PyLong_CheckExact(x) && !PyBool_Check(x))
        return 0;
    int overflow = 0;
    long v = PyLong_AsLongAndOverflow(x, &overflow);
    if (overflow || v < lo || v > hi)
        return 0;
    *value = v;
    return 1;
}

/* The transport-cc tail subscriber_links.transport_tail prepares, computed in place for the
 * usual mappings: no id table, or a table over a one-byte-form block (Chromium's): what goes in
 * front of the copy's extensions, where the rest of the packet starts (no copy of that rest),
 * and the table to apply to the copy's elements as rewrite_extensions would. */
typedef struct {
    long b0, two, profile, words;
    Py_ssize_t rest;             /* offset into the packet */
    const unsigned char *table;  /* NULL: ids unchanged */
    Py_ssize_t block;            /* bytes of elements after `rest` the table applies to */
} LocalTail;

#define ONE_BYTE_PROFILE 0xBEDE

/* rewrite_one_byte's walk over one-byte elements: 0 if the block is well formed, -1 if an
 * element overruns it (the reference raises RtpDecodeError). With `out`, ids are mapped through
 * `table` there (0 or 15+: the element is zeroed, as the reference strips it). */
static int
walk_one_byte(const unsigned char *in, Py_ssize_t end, const unsigned char *table,
              unsigned char *out)
{
    Py_ssize_t pos = 0;
    while (pos < end) {
        unsigned char b = in[pos];
        int ext_id = b >> 4;
        if (ext_id == 0) {
            pos += 1;
            continue;
        }
        if (ext_id == 15)
            break;
        Py_ssize_t size = (b & 0x0F) + 1;
        if (pos + 1 + size > end)
            return -1;
        if (out != NULL) {
            int new_id = table[ext_id];
            if (new_id != ext_id) {
                if (new_id >= 1 && new_id <= 14)
                    out[pos] = (unsigned char)((new_id << 4) | (size - 1));
                else
                    memset(out + pos, 0, (size_t)(size + 1));
            }
        }
        pos += 1 + size;
    }
    return 0;
}

/* 1: `tail` set; 0: the packet cannot take the element (transport_tail's None); -1: leave it
 * to Python (a table over a two-byte block, a key of another shape, or a malformed block,
 * which Python counts). */
static int
local_transport_tail(PyObject *key, const unsigned char *packet, Py_ssize_t n, LocalTail *tail)
{
    long tw_id;
    if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 2 || !tuple_int(key, 1, 0, 255, &tw_id))
        return -1;
    PyObject *table = PyTuple_GET_ITEM(key, 0);
    tail->table = NULL;
    tail->block = 0;
    if (table != Py_None) {
        if (!PyBytes_CheckExact(table) || PyBytes_GET_SIZE(table) < 256)
            return -1;
        tail->table = (const unsigned char *)PyBytes_AS_STRING(table);
    }
    long b0 = packet[0];
    if (b0 & 0x0F)
        return 0; /* CSRCs */
    if (!(b0 & 0x10)) { /* no block: nothing for a table to map */
        tail->b0 = b0 | 0x10;
        tail->two = tw_id > 14;
        tail->profile = tw_id > 14 ? 0x1000 : ONE_BYTE_PROFILE;
        tail->words = 1;
        tail->rest = 12;
        tail->table = NULL;
        return 1;
    }
    if (n < 16)
        return -1;
    long profile = (packet[12] << 8) | packet[13];
    long words = (packet[14] << 8) | packet[15];
    if (16 + 4 * (Py_ssize_t)words > n || words + 1 > 0xFFFF)
        return -1;
    if (profile == ONE_BYTE_PROFILE) {
        if (tail->table != NULL) {
            /* The reference rewrites (and so checks) the block before it looks at tw_id. */
            if (walk_one_byte(packet + 16, 4 * (Py_ssize_t)words, NULL, NULL) < 0)
                return -1;
            tail->block = 4 * (Py_ssize_t)words;
        }
        if (tw_id > 14)
            return 0;
        tail->two = 0;
    } else if (tail->table != NULL) {
        return -1;
    } else if ((profile & 0xFFF0) == 0x1000) {
        tail->two = 1;
    } else {
        return 0;
    }
    tail->b0 = b0;
    tail->profile = profile;
    tail->words = words + 1;
    tail->rest = 16;
    return 1;
}

/* One subscription's copy. Returns 1 (queued), 0 (skipped: payload type not forwarded),
 * a stop code + 2 (NEED_TW_TAIL, NEED_TAIL, SLOW: 3..5), or -1 on an error. Everything is
 * checked before the first write, so a stop leaves the subscription as it was. */
static int
copy_one(PyObject *d, long long epoch, long long ext, long long ts, long b0, long b1,
         const unsigned char *packet, Py_ssize_t packet_len, PyObject *size_obj,
         PyObject *plen_obj, PyObject *now_obj, long long ring_mask, PyObject *out,
         PyObject *tw_tails, PyObject *tails)
{
    const Layout *L = &downstream_layout;
    long long value, min_ext, seq_offset, ts_offset, ssrc, last_out_ext;
    int r = resolve(&downstream_layout, Py_TYPE(d), downstream_names, DOWNSTREAM_FIELDS);
    if (r <= 0)
        return r < 0 ? -1 : SLOW + 2;
    if (!read_ll(d, L, F_EPOCH, &value) || value != epoch)
        return SLOW + 2;
    if (field(d, L, F_SIM) != Py_None)
        return SLOW + 2;
    if (!read_ll(d, L, F_MIN_EXT, &min_ext) || ext < min_ext)
        return SLOW + 2; /* counted as too old by the reference */
    PyObject *table = field(d, L, F_B1_TABLE);
    if (table == NULL || !PyList_CheckExact(table) || PyList_GET_SIZE(table) <= b1)
        return SLOW + 2;
    PyObject *ob1_obj = PyList_GET_ITEM(table, b1);
    int overflow = 0;
    long ob1 = PyLong_CheckExact(ob1_obj) ? PyLong_AsLongAndOverflow(ob1_obj, &overflow) : -2;
    if (overflow || ob1 < -1 || ob1 > 255)
        return SLOW + 2;
    if (ob1 < 0)
        return 0;
    if (!read_ll(d, L, F_SEQ_OFFSET, &seq_offset) || !read_ll(d, L, F_TS_OFFSET, &ts_offset) ||
        !read_ll(d, L, F_SSRC, &ssrc) || !read_ll(d, L, F_LAST_OUT_EXT, &last_out_ext))
        return SLOW + 2;
    PyObject *subscriber = field(d, L, F_SUBSCRIBER);
    PyObject *packets = field(d, L, F_PACKETS), *octets = field(d, L, F_OCTETS);
    if (subscriber == NULL || packets == NULL || octets == NULL || ssrc < 0 ||
        ssrc > 0xFFFFFFFFLL || ts_offset < 0 || ts_offset > 0xFFFFFFFFLL ||
        seq_offset > (LLONG_MAX >> 2) || seq_offset < -(LLONG_MAX >> 2))
        return SLOW + 2;
    long long out_ext = ext + seq_offset;
    long long out_ts = (ts + ts_offset) & 0xFFFFFFFFLL;

    PyObject *data = NULL;
    PyObject *tw = field(d, L, F_TW);
    if (tw == NULL)
        return SLOW + 2;
    PyObject *twt = NULL; /* borrowed from tw_tails */
    LocalTail local = {0};
    int have_local = 0;
    if (tw != Py_None) {
        PyObject *key = field(d, L, F_TW_KEY);
        if (key == NULL)
            return SLOW + 2;
        twt = tw_tails == Py_None ? NULL : PyDict_GetItemWithError(tw_tails, key);
        if (twt == NULL) {
            if (PyErr_Occurred())
                return -1;
            int got = local_transport_tail(key, packet, packet_len, &local);
            if (got < 0)
                return NEED_TW_TAIL + 2;
            if (got == 0)
                twt = Py_None; /* no element for this packet: the plain copy below */
            have_local = got;
        }
    }
    if (have_local || (twt != NULL && twt != Py_None)) {
        /* (first byte, two-byte form, profile, words, rest): subscriber_links.TransportTail */
        const Layout *K = &link_layout;
        long tb0, two, profile, words;
        long long s, element;
        const char *rest_bytes;
        Py_ssize_t rest_len;
        r = resolve(&link_layout, Py_TYPE(tw), link_names, LINK_FIELDS);
        if (r <= 0)
            return r < 0 ? -1 : SLOW + 2;
        if (have_local) {
            tb0 = local.b0;
            two = local.two;
            profile = local.profile;
            words = local.words;
            rest_bytes = (const char *)packet + local.rest;
            rest_len = packet_len - local.rest;
        } else {
            if (!PyTuple_CheckExact(twt) || PyTuple_GET_SIZE(twt) != 5 ||
                !tuple_int(twt, 0, 0, 255, &tb0) || !tuple_int(twt, 1, 0, 1, &two) ||
                !tuple_int(twt, 2, 0, 0xFFFF, &profile) ||
                !tuple_int(twt, 3, 0, 0xFFFF, &words) ||
                !PyBytes_CheckExact(PyTuple_GET_ITEM(twt, 4)))
                return SLOW + 2;
            rest_bytes = PyBytes_AS_STRING(PyTuple_GET_ITEM(twt, 4));
            rest_len = PyBytes_GET_SIZE(PyTuple_GET_ITEM(twt, 4));
        }
        if (!read_ll(tw, K, L_SEQ, &s) || s < 0 || s > (LLONG_MAX >> 1) ||
            !read_ll(d, L, two ? F_TW_ID : F_TW_HDR, &element) || element < 0 || element > 255)
            return SLOW + 2;
        PyObject *sent_at = field(tw, K, L_SENT_AT), *sizes = field(tw, K, L_SIZES);
        Py_ssize_t slot = (Py_ssize_t)(s & ring_mask);
        if (sent_at == NULL || sizes == NULL || !PyList_CheckExact(sent_at) ||
            !PyList_CheckExact(sizes) || PyList_GET_SIZE(sent_at) <= slot ||
            PyList_GET_SIZE(sizes) <= slot)
            return SLOW + 2;
        data = PyBytes_FromStringAndSize(NULL, 20 + rest_len);
        if (data == NULL)
            return -1;
        unsigned char *p = (unsigned char *)PyBytes_AS_STRING(data);
        put_header(p, tb0, ob1, out_ext, out_ts, ssrc);
        put16(p + 12, (unsigned long)profile);
        put16(p + 14, (unsigned long)words);
        if (two) { /* id, length 2, sequence */
            p[16] = (unsigned char)element;
            p[17] = 2;
            put16(p + 18, (unsigned long)(s & 0xFFFF));
        } else { /* id << 4 | 1, sequence, one byte of padding */
            p[16] = (unsigned char)element;
            put16(p + 17, (unsigned long)(s & 0xFFFF));
            p[19] = 0;
        }
        memcpy(p + 20, rest_bytes, (size_t)rest_len);
        if (have_local && local.table != NULL)
            walk_one_byte((const unsigned char *)rest_bytes, local.block, local.table, p + 20);
        if (write_ll(tw, K, L_SEQ, s + 1) < 0) {
            Py_DECREF(data);
            return -1;
        }
        Py_INCREF(now_obj);
        PyList_SetItem(sent_at, slot, now_obj); /* steals; drops the old entry */
        Py_INCREF(size_obj);
        PyList_SetItem(sizes, slot, size_obj);
    } else {
        PyObject *key = field(d, L, F_TAIL_KEY);
        if (key == NULL)
            return SLOW + 2;
        int plain = key == Py_None;
        if (!plain) {
            long ast_id;
            if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 2 ||
                !tuple_int(key, 1, LONG_MIN + 1, LONG_MAX, &ast_id))
                return SLOW + 2;
            plain = ast_id == 0 && !(b0 & 0x10);
        }
        long ob0 = b0;
        const unsigned char *tail = packet + 12;
        Py_ssize_t tail_len = packet_len - 12;
        Py_buffer view = {0};
        int have_view = 0;
        if (!plain) {
            PyObject *cached = tails == Py_None ? NULL : PyDict_GetItemWithError(tails, key);
            if (cached == NULL)
                return PyErr_Occurred() ? -1 : NEED_TAIL + 2;
            if (!PyTuple_CheckExact(cached) || PyTuple_GET_SIZE(cached) != 2 ||
                !tuple_int(cached, 0, 0, 255, &ob0))
                return SLOW + 2;
            if (PyObject_GetBuffer(PyTuple_GET_ITEM(cached, 1), &view, PyBUF_SIMPLE) < 0)
                return -1;
            have_view = 1;
            tail = (const unsigned char *)view.buf;
            tail_len = view.len;
        }
        data = PyBytes_FromStringAndSize(NULL, 12 + tail_len);
        if (data != NULL) {
            unsigned char *p = (unsigned char *)PyBytes_AS_STRING(data);
            put_header(p, ob0, ob1, out_ext, out_ts, ssrc);
            memcpy(p + 12, tail, (size_t)tail_len);
        }
        if (have_view)
            PyBuffer_Release(&view);
        if (data == NULL)
            return -1;
    }

    PyObject *item = PyTuple_Pack(2, subscriber, data);
    Py_DECREF(data);
    if (item == NULL)
        return -1;
    r = PyList_Append(out, item);
    Py_DECREF(item);
    if (r < 0)
        return -1;
    if (out_ext > last_out_ext) {
        if (write_ll(d, L, F_LAST_OUT_EXT, out_ext) < 0 ||
            write_ll(d, L, F_LAST_OUT_TS, out_ts) < 0)
            return -1;
        store(d, L, F_LAST_OUT_TIME, now_obj);
    }
    if (add_to(d, L, F_PACKETS, one) < 0 || add_to(d, L, F_OCTETS, plen_obj) < 0)
        return -1;
    return 1;
}

/* The copy loop over fanout[start:]: the index of the first subscription left to Python, with
 * its code in `stop`, or len(fanout) with DONE; -1 on an error. */
static Py_ssize_t
copies_from(PyObject *fanout, Py_ssize_t start, long long epoch, long long ext, long long ts,
            long b0, long b1, const unsigned char *packet, Py_ssize_t packet_len,
            PyObject *size_obj, PyObject *plen_obj, PyObject *now_obj, long long ring_mask,
            PyObject *out, PyObject *tw_tails, PyObject *tails, int *stop)
{
    Py_ssize_t i = start;
    for (; i < PyList_GET_SIZE(fanout); i++) {
        PyObject *d = PyList_GET_ITEM(fanout, i);
        Py_INCREF(d);
        int r = copy_one(d, epoch, ext, ts, b0, b1, packet, packet_len, size_obj, plen_obj,
                         now_obj, ring_mask, out, tw_tails, tails);
        Py_DECREF(d);
        if (r < 0)
            return -1;
        if (r >= 2) {
            *stop = r - 2;
            return i;
        }
    }
    *stop = DONE;
    return i;
}

/* fan_out(fanout, start, epoch, ext, ts, b0, b1, packet, size, plen, now, ring_mask, out,
 *         tw_tails, tails) -> (index << 2) | code
 *
 * Runs routing.forward's loop body for fanout[start:], appending (subscriber, copy) to out,
 * and stops at the first subscription it leaves to Python: index is that subscription (or
 * len(fanout) with DONE). `size` is stored in the transport-wide send history (the packet's
 * length + 4, the same int object for every copy, as the reference stores), `plen` is added
 * to each subscription's octets. `tw_tails`/`tails` map a subscriber mapping to its prepared
 * tail for this packet; None until Python has prepared one (no dict per packet for nothing). */
static PyObject *
fan_out(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 15) {
        PyErr_Format(PyExc_TypeError, "fan_out() takes 15 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *fanout = args[0], *packet_obj = args[7], *size_obj = args[8],
             *plen_obj = args[9], *now_obj = args[10], *out = args[12], *tw_tails = args[13],
             *tails = args[14];
    if (!PyList_CheckExact(fanout) || !PyBytes_CheckExact(packet_obj) ||
        !PyList_CheckExact(out) || !(tw_tails == Py_None || PyDict_CheckExact(tw_tails)) ||
        !(tails == Py_None || PyDict_CheckExact(tails)) ||
        !PyLong_CheckExact(size_obj) || !PyLong_CheckExact(plen_obj)) {
        PyErr_SetString(PyExc_TypeError,
                        "fan_out(): fanout, out: list; packet: bytes; size, plen: int; "
                        "tw_tails, tails: dict or None (none prepared yet)");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    long long epoch = PyLong_AsLongLong(args[2]);
    long long ext = PyLong_AsLongLong(args[3]);
    long long ts = PyLong_AsLongLong(args[4]);
    long b0 = PyLong_AsLong(args[5]);
    long b1 = PyLong_AsLong(args[6]);
    long long ring_mask = PyLong_AsLongLong(args[11]);
    if (PyErr_Occurred())
        return NULL;
    Py_ssize_t packet_len = PyBytes_GET_SIZE(packet_obj);
    if (packet_len < 12 || b0 < 0 || b0 > 255 || b1 < 0 || b1 > 255 || ts < 0 ||
        ts > 0xFFFFFFFFLL || ring_mask < 0 || start < 0) {
        PyErr_SetString(PyExc_ValueError, "fan_out(): argument out of range");
        return NULL;
    }
    const unsigned char *packet = (const unsigned char *)PyBytes_AS_STRING(packet_obj);
    int stop;
    Py_ssize_t i = copies_from(fanout, start, epoch, ext, ts, b0, b1, packet, packet_len,
                               size_obj, plen_obj, now_obj, ring_mask, out, tw_tails, tails,
                               &stop);
    return i < 0 ? NULL : PyLong_FromSsize_t((i << 2) | stop);
}

/* twcc_results(statuses, deltas, t, base, sent_at, sizes, ring_mask) -> list | None
 *
 * SubscriberLink.on_twcc's loop (outside probes): one (sent, arrival, size) per reported
 * packet, arrival None for a lost one, from the feedback's statuses (bytes of 0..3) and
 * deltas (ints, in 250 us units) and the link's send history rings; t is the feedback's
 * reference time in seconds. None (the caller runs the reference loop) if the deltas run
 * out or an input has an unexpected shape. */
static PyObject *
twcc_results(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError, "twcc_results() takes 7 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *statuses = args[0], *deltas = args[1], *sent_at = args[4], *sizes = args[5];
    if (!PyBytes_CheckExact(statuses) || !PyTuple_CheckExact(deltas) ||
        !PyList_CheckExact(sent_at) || !PyList_CheckExact(sizes)) {
        PyErr_SetString(PyExc_TypeError,
                        "twcc_results(): statuses: bytes; deltas: tuple; sent_at, sizes: list");
        return NULL;
    }
    double t = PyFloat_AsDouble(args[2]);
    long long base = PyLong_AsLongLong(args[3]);
    long long ring_mask = PyLong_AsLongLong(args[6]);
    if (PyErr_Occurred())
        return NULL;
    if (ring_mask < 0 || ring_mask >= PyList_GET_SIZE(sent_at) ||
        ring_mask >= PyList_GET_SIZE(sizes))
        Py_RETURN_NONE;
    Py_ssize_t count = PyBytes_GET_SIZE(statuses);
    const unsigned char *status = (const unsigned char *)PyBytes_AS_STRING(statuses);
    Py_ssize_t next_delta = 0, ndeltas = PyTuple_GET_SIZE(deltas);
    PyObject *results = PyList_New(0);
    if (results == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (status[i] != 0 && status[i] != 1 && status[i] != 2)
            continue;
        Py_ssize_t slot = (Py_ssize_t)((base + i) & ring_mask);
        PyObject *arrival;
        if (status[i] == 0) {
            arrival = Py_None;
            Py_INCREF(arrival);
        } else {
            if (next_delta >= ndeltas)
                goto reference;
            PyObject *delta = PyTuple_GET_ITEM(deltas, next_delta++);
            if (!PyLong_CheckExact(delta))
                goto reference;
            long value = PyLong_AsLong(delta);
            if (value == -1 && PyErr_Occurred())
                goto fail;
            t += (double)value * 250e-6;
            arrival = PyFloat_FromDouble(t);
            if (arrival == NULL)
                goto fail;
        }
        PyObject *item = PyTuple_Pack(3, PyList_GET_ITEM(sent_at, slot), arrival,
                                      PyList_GET_ITEM(sizes, slot));
        Py_DECREF(arrival);
        if (item == NULL)
            goto fail;
        int appended = PyList_Append(results, item);
        Py_DECREF(item);
        if (appended < 0)
            goto fail;
    }
    return results;
reference:
    Py_DECREF(results);
    Py_RETURN_NONE;
fail:
    Py_DECREF(results);
    return NULL;
}

/* read_transport_seq(packet, ext_id) -> int
 *
 * py_read_transport_seq's scan, step for step: the 16-bit number under ext_id in the packet's
 * one-byte (0xBEDE) or two-byte (0x100x) extension block, or -1 if absent or malformed. */
static long
scan_transport_seq(const unsigned char *p, Py_ssize_t n, long long ext_id)
{
    if (n == 0 || !(p[0] & 0x10))
        return -1;
    Py_ssize_t start = 12 + ((p[0] & 0x0F) << 2);
    if (n < start + 4)
        return -1;
    unsigned profile = ((unsigned)p[start] << 8) | p[start + 1];
    Py_ssize_t end = start + 4 + ((((Py_ssize_t)p[start + 2] << 8) | p[start + 3]) << 2);
    if (end > n)
        return -1;
    Py_ssize_t pos = start + 4;
    if (profile == 0xBEDE) {
        while (pos < end) {
            unsigned b = p[pos], eid = b >> 4;
            if (eid == 0) {
                pos += 1;
                continue;
            }
            if (eid == 15)
                return -1;
            Py_ssize_t size = (b & 0x0F) + 1;
            if ((long long)eid == ext_id) {
                if (size != 2 || pos + 3 > end)
                    return -1;
                return ((long)p[pos + 1] << 8) | p[pos + 2];
            }
            pos += 1 + size;
        }
        return -1;
    }
    if ((profile & 0xFFF0) != 0x1000)
        return -1;
    while (pos + 1 < end) {
        unsigned eid = p[pos];
        if (eid == 0) {
            pos += 1;
            continue;
        }
        Py_ssize_t size = p[pos + 1];
        if ((long long)eid == ext_id) {
            if (size != 2 || pos + 4 > end)
                return -1;
            return ((long)p[pos + 2] << 8) | p[pos + 3];
        }
        pos += 2 + size;
    }
    return -1;
}

static PyObject *
read_transport_seq(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "read_transport_seq() takes 2 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    int overflow;
    long long ext_id = PyLong_AsLongLongAndOverflow(args[1], &overflow);
    if (ext_id == -1 && PyErr_Occurred())
        return NULL;
    if (overflow)
        ext_id = -1; /* matches no id, as in Python */
    if (PyBytes_CheckExact(args[0]))
        return PyLong_FromLong(scan_transport_seq(
            (const unsigned char *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]),
            ext_id));
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    long seq = scan_transport_seq((const unsigned char *)view.buf, view.len, ext_id);
    PyBuffer_Release(&view);
    return PyLong_FromLong(seq);
}

/* ---- route ---------------------------------------------------------------------------------- */

/* Forwarder.route_rtp with routing.forward for the packet that is nearly every packet: the
 * next in order (no gap, no reorder) on a known primary, non-simulcast stream with a forwarded
 * payload type. Everything is checked before anything is written, so a packet this does not
 * take is handed back untouched (-1) and Python routes it whole with the reference code. */
enum { P_STREAMS, P_TWCC, PARTICIPANT_FIELDS };
static const char *participant_names[PARTICIPANT_FIELDS] = {"streams", "twcc"};
enum { S_IS_RTX, S_VP8, S_TRACK, S_RECEIVE, S_CACHE, S_OCTETS, S_FANOUT, S_EPOCH, STREAM_FIELDS };
static const char *stream_names[STREAM_FIELDS] = {
    "is_rtx", "vp8", "track", "receive", "cache", "octets", "fanout", "epoch",
};
enum { K_PTS, TRACK_FIELDS };
static const char *track_names[TRACK_FIELDS] = {"pts"};
enum {
    R_MAX_EXT, R_MAX_DROPOUT, R_SEEN, R_WINDOW_MASK, R_LAST_EXT, R_RECEIVED, R_CLOCK_RATE,
    R_LAST_TS, R_JITTER, R_LAST_ARRIVAL, RECEIVE_FIELDS
};
static const char *receive_names[RECEIVE_FIELDS] = {
    "max_ext", "max_dropout", "_seen", "_window_mask", "last_ext", "received", "_clock_rate",
    "last_ts", "jitter", "last_arrival",
};
enum { C_MASK, C_PACKETS, C_EXTS, CACHE_FIELDS };
static const char *cache_names[CACHE_FIELDS] = {"mask", "packets", "exts"};
enum { W_EXT_ID, W_LAST, W_BASE, W_MAX, W_ARRIVALS, W_SINCE, W_LATE, W_RECORDED, RECORDER_FIELDS };
static const char *recorder_names[RECORDER_FIELDS] = {
    "ext_id", "_last", "_base", "_max", "_arrivals", "since", "late", "recorded",
};
static Layout participant_layout, stream_layout, track_layout, receive_layout, cache_layout,
    recorder_layout;
static PyObject *s_rtp_received, *s_rtp_forwarded;

/* A float field: 1 read; 0 unset or not exactly a float (the reference then runs). */
static int
read_double(PyObject *obj, const Layout *layout, int index, double *value)
{
    PyObject *x = field(obj, layout, index);
    if (x == NULL || !PyFloat_CheckExact(x))
        return 0;
    *value = PyFloat_AS_DOUBLE(x);
    return 1;
}

static int
write_double(PyObject *obj, const Layout *layout, int index, double value)
{
    PyObject *x = PyFloat_FromDouble(value);
    if (x == NULL)
        return -1;
    store(obj, layout, index, x);
    Py_DECREF(x);
    return 0;
}

static int
exact_int(PyObject *obj, const Layout *layout, int index)
{
    PyObject *x = field(obj, layout, index);
    return x != NULL && PyLong_CheckExact(x);
}

/* counters.<name> += delta through the generic attribute calls (Counters keeps instance
 * attributes over class defaults, not slots). */
static int
count(PyObject *counters, PyObject *name, PyObject *delta)
{
    PyObject *before = PyObject_GetAttr(counters, name);
    if (before == NULL)
        return -1;
    PyObject *after = PyNumber_Add(before, delta);
    Py_DECREF(before);
    if (after == NULL)
        return -1;
    int r = PyObject_SetAttr(counters, name, after);
    Py_DECREF(after);
    return r;
}

/* 1: every layout this packet touches resolved; 0: an object of another shape (reference). */
#define RESOLVE(layout, obj, names, count_)                                                  \
    do {                                                                                     \
        int r_ = resolve(&(layout), Py_TYPE(obj), (names), (count_));                        \
        if (r_ < 0)                                                                          \
            goto error;                                                                      \
        if (r_ == 0)                                                                         \
            goto reference;                                                                  \
    } while (0)

/* route()'s writes, once every check passed (see route). */
static PyObject *
route_written(PyObject *stream, PyObject *rs, PyObject *cache, PyObject *twcc,
              PyObject *arrivals, PyObject *counters, PyObject *packet_obj, PyObject *now_obj,
              PyObject *out, const unsigned char *p, Py_ssize_t n, long b0, long b1,
              long long ts, long long ext, long long epoch, Py_ssize_t plen,
              Py_ssize_t cache_slot, long long ext_id, long long tw_last, long long tw_base,
              long long tw_max, long long clock_rate, long long last_ts, double jitter,
              double last_arrival, long long ring_mask, long long max_pending)
{
    const Layout *S = &stream_layout, *R = &receive_layout, *C = &cache_layout,
                 *W = &recorder_layout;
    double now = PyFloat_AS_DOUBLE(now_obj);
    PyObject *key = NULL, *size_obj = NULL, *plen_obj = NULL, *fanout;
    long long result = -1;
    /* One object for the extended number: max_ext, last_ext and the cache's entry share it. */
    PyObject *ext_obj = PyLong_FromLongLong(ext);
    if (ext_obj == NULL)
        return NULL;
    if (count(counters, s_rtp_received, one) < 0)
        goto error;
    if (twcc != Py_None) { /* TwccRecorder.record */
        long tw_seq = scan_transport_seq(p, n, ext_id);
        if (tw_seq >= 0) {
            long long tw_ext;
            if (tw_last < 0) {
                tw_ext = (1LL << 16) + tw_seq;
                tw_base = tw_ext;
                if (write_ll(twcc, W, W_BASE, tw_base) < 0)
                    goto error;
            } else {
                tw_ext = tw_last + ((tw_seq - tw_last + 0x8000) & 0xFFFF) - 0x8000;
            }
            if (tw_ext > tw_max && write_ll(twcc, W, W_MAX, tw_ext) < 0)
                goto error;
            if (write_ll(twcc, W, W_LAST, tw_ext) < 0)
                goto error;
            if (tw_ext < tw_base) {
                if (add_to(twcc, W, W_LATE, one) < 0)
                    goto error;
            } else {
                Py_ssize_t pending = PyDict_GET_SIZE(arrivals);
                if (pending == 0)
                    store(twcc, W, W_SINCE, now_obj);
                if (pending == 0 || pending < max_pending) {
                    key = PyLong_FromLongLong(tw_ext);
                    if (key == NULL || PyDict_SetItem(arrivals, key, now_obj) < 0)
                        goto error;
                    Py_CLEAR(key);
                    if (add_to(twcc, W, W_RECORDED, one) < 0)
                        goto error;
                }
            }
        }
    }
    { /* ReceiveStats.update, in-order branch (its _count inlined there, without the
       * last_ts >= 0 test, as the reference has it) */
        PyObject *shifted = PyNumber_Lshift(field(rs, R, R_SEEN), one);
        PyObject *marked = shifted == NULL ? NULL : PyNumber_Or(shifted, one);
        Py_XDECREF(shifted);
        PyObject *seen = marked == NULL ? NULL : PyNumber_And(marked, field(rs, R, R_WINDOW_MASK));
        Py_XDECREF(marked);
        if (seen == NULL)
            goto error;
        store(rs, R, R_SEEN, seen);
        Py_DECREF(seen);
        store(rs, R, R_MAX_EXT, ext_obj);
        store(rs, R, R_LAST_EXT, ext_obj);
        if (add_to(rs, R, R_RECEIVED, one) < 0)
            goto error;
        double arrival = now * (double)clock_rate;
        long long d_ts = ((ts - last_ts + 0x80000000LL) & 0xFFFFFFFFLL) - 0x80000000LL;
        double updated = jitter + (fabs((arrival - last_arrival) - (double)d_ts) - jitter) / 16.0;
        if (write_double(rs, R, R_JITTER, updated) < 0 || write_ll(rs, R, R_LAST_TS, ts) < 0 ||
            write_double(rs, R, R_LAST_ARRIVAL, arrival) < 0)
            goto error;
    }
    if (cache != Py_None) { /* PacketCache.put, inlined in forward */
        Py_INCREF(ext_obj);
        Py_INCREF(packet_obj);
        PyList_SetItem(field(cache, C, C_PACKETS), cache_slot, packet_obj);
        PyList_SetItem(field(cache, C, C_EXTS), cache_slot, ext_obj);
    }
    plen_obj = PyLong_FromSsize_t(plen);
    if (plen_obj == NULL || add_to(stream, S, S_OCTETS, plen_obj) < 0)
        goto error;
    fanout = field(stream, S, S_FANOUT);
    if (PyList_GET_SIZE(fanout) == 0) {
        result = 0;
        goto done;
    }
    size_obj = PyLong_FromSsize_t(n + 4);
    if (size_obj == NULL)
        goto error;
    Py_ssize_t before = PyList_GET_SIZE(out);
    int stop;
    Py_INCREF(fanout);
    Py_ssize_t stopped = copies_from(fanout, 0, epoch, ext, ts, b0, b1, p, n, size_obj,
                                     plen_obj, now_obj, ring_mask, out, Py_None, Py_None, &stop);
    Py_DECREF(fanout);
    if (stopped < 0)
        goto error;
    if (stop != DONE) {
        result = -2 - (long long)stopped;
        goto done;
    }
    PyObject *sent = PyLong_FromSsize_t(PyList_GET_SIZE(out) - before);
    if (sent == NULL)
        goto error;
    int counted = count(counters, s_rtp_forwarded, sent);
    result = PyLong_AsLongLong(sent);
    Py_DECREF(sent);
    if (counted < 0)
        goto error;
done:
    Py_DECREF(ext_obj);
    Py_XDECREF(key);
    Py_XDECREF(size_obj);
    Py_XDECREF(plen_obj);
    return PyLong_FromLongLong(result);
error:
    Py_DECREF(ext_obj);
    Py_XDECREF(key);
    Py_XDECREF(size_obj);
    Py_XDECREF(plen_obj);
    return NULL;
}

/* route(participant, packet, now, out, counters, ring_mask, max_pending) -> int
 *
 * n >= 0: routed, n copies queued (every counter and field the reference touches, written).
 * -1: not taken, nothing changed: the caller runs the reference route_rtp.
 * -2 - i: routed up to the fan-out, which stopped at subscription i for a step it leaves to
 *         Python (as fan_out does): the caller resumes the reference loop there and counts
 *         rtp_forwarded for the whole packet.
 * `max_pending` is publisher_feedback.MAX_PENDING, `ring_mask` subscriber_links.RING_MASK. */
static PyObject *
route(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError, "route() takes 7 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *part = args[0], *packet_obj = args[1], *now_obj = args[2], *out = args[3],
             *counters = args[4];
    if (!PyList_CheckExact(out)) {
        PyErr_SetString(PyExc_TypeError, "route(): out must be a list");
        return NULL;
    }
    long long ring_mask = PyLong_AsLongLong(args[5]);
    long long max_pending = PyLong_AsLongLong(args[6]);
    if (PyErr_Occurred())
        return NULL;
    PyObject *stream = NULL, *key = NULL;
    if (ring_mask < 0 || !PyBytes_CheckExact(packet_obj) || !PyFloat_CheckExact(now_obj))
        goto reference;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(packet_obj);
    Py_ssize_t n = PyBytes_GET_SIZE(packet_obj);

    /* The header, as route_rtp reads it (anything malformed: the reference counts it). */
    if (n < 12)
        goto reference;
    long b0 = p[0], b1 = p[1];
    long long seq = ((long long)p[2] << 8) | p[3];
    long long ts = ((long long)p[4] << 24) | ((long long)p[5] << 16) | ((long long)p[6] << 8) | p[7];
    unsigned long ssrc = ((unsigned long)p[8] << 24) | ((unsigned long)p[9] << 16) |
                         ((unsigned long)p[10] << 8) | p[11];
    Py_ssize_t hl = 12 + ((b0 & 0x0F) << 2);
    if (b0 & 0x10) {
        if (n < hl + 4)
            goto reference;
        hl += 4 + ((((Py_ssize_t)p[hl + 2] << 8) | p[hl + 3]) << 2);
    }
    Py_ssize_t plen = n - hl;
    if ((b0 & 0xC0) != 0x80 || plen < 0)
        goto reference;
    if (b0 & 0x20) {
        long pad = p[n - 1];
        if (pad == 0 || pad > plen)
            goto reference;
        plen -= pad;
    }

    /* Everything this packet touches, checked before the first write. */
    RESOLVE(participant_layout, part, participant_names, PARTICIPANT_FIELDS);
    PyObject *streams = field(part, &participant_layout, P_STREAMS);
    PyObject *twcc = field(part, &participant_layout, P_TWCC);
    if (streams == NULL || !PyDict_CheckExact(streams) || twcc == NULL)
        goto reference;
    key = PyLong_FromUnsignedLong(ssrc);
    if (key == NULL)
        goto error;
    stream = PyDict_GetItemWithError(streams, key);
    if (stream == NULL) {
        if (PyErr_Occurred())
            goto error;
        goto reference;
    }
    Py_INCREF(stream);
    Py_CLEAR(key);
    const Layout *S = &stream_layout;
    RESOLVE(stream_layout, stream, stream_names, STREAM_FIELDS);
    PyObject *track = field(stream, S, S_TRACK), *rs = field(stream, S, S_RECEIVE);
    PyObject *cache = field(stream, S, S_CACHE), *fanout = field(stream, S, S_FANOUT);
    long long epoch;
    if (field(stream, S, S_IS_RTX) != Py_False || field(stream, S, S_VP8) != Py_False ||
        track == NULL || rs == NULL || cache == NULL || fanout == NULL ||
        !PyList_CheckExact(fanout) || !exact_int(stream, S, S_OCTETS) ||
        !read_ll(stream, S, S_EPOCH, &epoch))
        goto reference;
    RESOLVE(track_layout, track, track_names, TRACK_FIELDS);
    PyObject *pts = field(track, &track_layout, K_PTS);
    if (pts == NULL || !PyAnySet_CheckExact(pts))
        goto reference;
    key = PyLong_FromLong(b1 & 0x7F);
    if (key == NULL)
        goto error;
    int forwarded_pt = PySet_Contains(pts, key);
    Py_CLEAR(key);
    if (forwarded_pt < 0)
        goto error;
    if (!forwarded_pt)
        goto reference; /* counted as a bad payload type by the reference */

    const Layout *R = &receive_layout;
    RESOLVE(receive_layout, rs, receive_names, RECEIVE_FIELDS);
    long long hi, max_dropout, clock_rate, last_ts;
    double jitter, last_arrival;
    if (!read_ll(rs, R, R_MAX_EXT, &hi) || !read_ll(rs, R, R_MAX_DROPOUT, &max_dropout) ||
        !read_ll(rs, R, R_CLOCK_RATE, &clock_rate) || !read_ll(rs, R, R_LAST_TS, &last_ts) ||
        !read_double(rs, R, R_JITTER, &jitter) ||
        !read_double(rs, R, R_LAST_ARRIVAL, &last_arrival) || !exact_int(rs, R, R_SEEN) ||
        !exact_int(rs, R, R_WINDOW_MASK) || !exact_int(rs, R, R_RECEIVED))
        goto reference;
    /* ReceiveStats.update's in-order branch only: the next number, nothing lost before it. */
    if (hi < 0 || hi > (LLONG_MAX >> 2) || max_dropout < 1 || last_ts < -1 ||
        last_ts > 0xFFFFFFFFLL || ((((seq - hi + 0x8000) & 0xFFFF) - 0x8000) != 1))
        goto reference;
    long long ext = hi + 1;

    const Layout *C = &cache_layout;
    Py_ssize_t cache_slot = 0;
    if (cache != Py_None) {
        long long mask;
        RESOLVE(cache_layout, cache, cache_names, CACHE_FIELDS);
        PyObject *packets = field(cache, C, C_PACKETS), *exts = field(cache, C, C_EXTS);
        if (!read_ll(cache, C, C_MASK, &mask) || mask < 0 || packets == NULL || exts == NULL ||
            !PyList_CheckExact(packets) || !PyList_CheckExact(exts))
            goto reference;
        cache_slot = (Py_ssize_t)(ext & mask);
        if (cache_slot >= PyList_GET_SIZE(packets) || cache_slot >= PyList_GET_SIZE(exts))
            goto reference;
    }

    const Layout *W = &recorder_layout;
    long long ext_id = 0, tw_last = 0, tw_base = 0, tw_max = 0;
    PyObject *arrivals = NULL;
    if (twcc != Py_None) {
        RESOLVE(recorder_layout, twcc, recorder_names, RECORDER_FIELDS);
        arrivals = field(twcc, W, W_ARRIVALS);
        if (!read_ll(twcc, W, W_EXT_ID, &ext_id) || !read_ll(twcc, W, W_LAST, &tw_last) ||
            !read_ll(twcc, W, W_BASE, &tw_base) || !read_ll(twcc, W, W_MAX, &tw_max) ||
            arrivals == NULL || !PyDict_CheckExact(arrivals) || !exact_int(twcc, W, W_LATE) ||
            !exact_int(twcc, W, W_RECORDED) || tw_last > (LLONG_MAX >> 2) ||
            tw_last < -(LLONG_MAX >> 2))
            goto reference;
    }

    /* From here on the packet is ours: route_rtp's and forward's writes, in their order. The
     * objects read above are held while written (a counter's attribute call could, in
     * principle, run code that replaces the slots they were borrowed from). */
    PyObject *held[] = {rs, cache, twcc, track};
    for (int h = 0; h < 4; h++)
        Py_INCREF(held[h]);
    PyObject *routed = route_written(stream, rs, cache, twcc, arrivals, counters, packet_obj,
                                     now_obj, out, p, n, b0, b1, ts, ext, epoch, plen,
                                     cache_slot, ext_id, tw_last, tw_base, tw_max, clock_rate,
                                     last_ts, jitter, last_arrival, ring_mask, max_pending);
    for (int h = 0; h < 4; h++)
        Py_DECREF(held[h]);
    Py_XDECREF(stream);
    return routed;
reference:
    Py_XDECREF(stream);
    Py_XDECREF(key);
    return PyLong_FromLongLong(-1);
error:
    Py_XDECREF(stream);
    Py_XDECREF(key);
    return NULL;
}

static PyMethodDef methods[] = {
    {"read_transport_seq", (PyCFunction)(void (*)(void))read_transport_seq, METH_FASTCALL,
     "A publisher packet's transport-wide sequence number or -1; see the module source."},
    {"twcc_results", (PyCFunction)(void (*)(void))twcc_results, METH_FASTCALL,
     "The (sent, arrival, size) list of one TWCC feedback; see the module source."},
    {"fan_out", (PyCFunction)(void (*)(void))fan_out, METH_FASTCALL,
     "Queue one rewritten copy per subscription of fanout[start:]; see the module source."},
    {"route", (PyCFunction)(void (*)(void))route, METH_FASTCALL,
     "Route one in-order RTP packet of a known stream, or -1; see the module source."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "router.forwarding._fanout",
    "Compiled twin of router.forwarding.routing's per-subscriber loop.", -1, methods,
};

PyMODINIT_FUNC
PyInit__fanout(void)
{
    if ((one = PyLong_FromLong(1)) == NULL ||
        (s_rtp_received = PyUnicode_InternFromString("rtp_received")) == NULL ||
        (s_rtp_forwarded = PyUnicode_InternFromString("rtp_forwarded")) == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "DONE", DONE) < 0 ||
        PyModule_AddIntConstant(m, "NEED_TW_TAIL", NEED_TW_TAIL) < 0 ||
        PyModule_AddIntConstant(m, "NEED_TAIL", NEED_TAIL) < 0 ||
        PyModule_AddIntConstant(m, "SLOW", SLOW) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
