/*
 * router.transport._fastpath: the router's per-packet loops that Python itself makes slow.
 *
 * Five loops, each the compiled twin of a pure-Python reference that stays in the tree and is
 * tested against this one on the same inputs (tests/transport/test_fastpath.py):
 *
 *   protect_batch  - SrtpContext.protect_rtp_batch's loop: protect each plain RTP packet with
 *                    libsrtp and append (srtp, dest) to the outbox. libsrtp is pylibsrtp's own
 *                    copy (statically linked into its cffi module): the caller passes the
 *                    address of its srtp_protect and of the session pylibsrtp created, so the
 *                    session's state (rollover counters, replay lists) is the one both paths
 *                    use and no second libsrtp (or its headers) is needed to build this.
 *   send_batch     - UdpDriver._flush: the outbox goes out with sendmmsg(2), up to 64
 *                    datagrams per system call instead of one sendto per datagram.
 *   recv_batch     - UdpDriver._batch's read loop: recvmmsg(2), up to 64 datagrams per call
 *                    (optionally with each datagram's kernel receive time, for the bench).
 *   ingest         - TransportMux.receive_datagram over that batch for its commonest case,
 *                    SRTP from a validated peer: srtp_unprotect (the same libsrtp and session,
 *                    as for protect_batch) and the peer's rtp_handler, without the mux, the
 *                    transport's checks in Python or the cffi call; the rest goes to the mux.
 *   protect_copies - ForwarderPlane.flush: the forwarder's copies protected (as protect_batch)
 *                    and queued on their transports, grouped by subscriber as the reference.
 *
 * Plain CPython C API rather than cffi: these loops walk Python lists of bytes and tuples, and
 * a cffi function would need each item converted on the Python side first, which is the very
 * per-packet cost this removes. Nothing here keeps state between calls except recv buffers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*srtp_func)(void *session, void *buffer, int *length);

#define MIN_RTP 12
#define CHUNK 64
#define RECV_SLOT 9216

/* ---- SRTP ----------------------------------------------------------------------------------- */

/* Protect one plain RTP packet with libsrtp's `protect` on `session` and append (srtp, dest) to
 * `out`: 1 queued, 0 refused (too short, longer than `max_length`, or refused by libsrtp; the
 * caller counts it), -1 on a Python error. Protected in place inside the output object: one
 * copy per packet, like the reference path's copy into pylibsrtp's buffer, and none out of it. */
static int
protect_into(srtp_func protect, void *session, PyObject *packet, Py_ssize_t max_length,
             Py_ssize_t trailer, PyObject *dest, PyObject *out)
{
    Py_buffer view;
    if (PyObject_GetBuffer(packet, &view, PyBUF_SIMPLE) < 0)
        return -1;
    Py_ssize_t n = view.len;
    if (n < MIN_RTP || n > max_length) {
        PyBuffer_Release(&view);
        return 0;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, n + trailer);
    if (result == NULL) {
        PyBuffer_Release(&view);
        return -1;
    }
    memcpy(PyBytes_AS_STRING(result), view.buf, (size_t)n);
    PyBuffer_Release(&view);
    int length = (int)n;
    if (protect(session, PyBytes_AS_STRING(result), &length) != 0 || length < n ||
        length > n + trailer) {
        Py_DECREF(result);
        return 0;
    }
    if (_PyBytes_Resize(&result, length) < 0)
        return -1;
    PyObject *item = PyTuple_Pack(2, result, dest);
    Py_DECREF(result);
    if (item == NULL)
        return -1;
    int appended = PyList_Append(out, item);
    Py_DECREF(item);
    return appended < 0 ? -1 : 1;
}

static PyObject *
protect_batch(PyObject *self, PyObject *args)
{
    unsigned long long func_addr, session_addr;
    PyObject *packets, *dest, *out;
    Py_ssize_t max_length, trailer;
    if (!PyArg_ParseTuple(args, "KKO!nnOO!", &func_addr, &session_addr, &PyList_Type, &packets,
                          &max_length, &trailer, &dest, &PyList_Type, &out))
        return NULL;
    srtp_func protect = (srtp_func)(uintptr_t)func_addr;
    void *session = (void *)(uintptr_t)session_addr;
    Py_ssize_t failed = 0;
    Py_ssize_t count = PyList_GET_SIZE(packets);
    for (Py_ssize_t i = 0; i < count; i++) {
        int r = protect_into(protect, session, PyList_GET_ITEM(packets, i), max_length, trailer,
                             dest, out);
        if (r < 0)
            return NULL;
        failed += r == 0;
    }
    return PyLong_FromSsize_t(failed);
}

/* ---- addresses ------------------------------------------------------------------------------ */

/* Python's (host, port) / (host, port, flowinfo, scope_id) for an IP literal; 0 if it is not
 * one this fast path handles (the caller then sends that datagram with socket.sendto). */
static int
parse_address(PyObject *addr, int family, struct sockaddr_storage *storage, socklen_t *length)
{
    if (!PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) < 2)
        return 0;
    PyObject *host = PyTuple_GET_ITEM(addr, 0);
    PyObject *port_obj = PyTuple_GET_ITEM(addr, 1);
    if (!PyUnicode_Check(host) || !PyLong_Check(port_obj))
        return 0;
    long port = PyLong_AsLong(port_obj);
    if (port < 0 || port > 65535) {
        PyErr_Clear();
        return 0;
    }
    const char *text = PyUnicode_AsUTF8(host);
    if (text == NULL) {
        PyErr_Clear();
        return 0;
    }
    memset(storage, 0, sizeof(*storage));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)storage;
        if (PyTuple_GET_SIZE(addr) != 2 || inet_pton(AF_INET, text, &sin->sin_addr) != 1)
            return 0;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *length = sizeof(*sin);
        return 1;
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)storage;
        if (PyTuple_GET_SIZE(addr) > 2)
            return 0; /* flowinfo / scope ids: leave them to the stdlib */
        if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
            return 0;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *length = sizeof(*sin6);
        return 1;
    }
    return 0;
}

static PyObject *
make_address(const struct sockaddr_storage *storage)
{
    char text[INET6_ADDRSTRLEN];
    if (storage->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)storage;
        if (inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text)) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", text, (int)ntohs(sin->sin_port));
    }
    if (storage->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)storage;
        if (inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text)) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        /* The stdlib's form: (host, port, flowinfo, scope_id). */
        return Py_BuildValue("(siII)", text, (int)ntohs(sin6->sin6_port),
                             (unsigned int)ntohl(sin6->sin6_flowinfo),
                             (unsigned int)sin6->sin6_scope_id);
    }
    Py_RETURN_NONE;
}

/* ---- sendmmsg ------------------------------------------------------------------------------- */

/* send_batch(fd, family, items) -> (consumed, errors, stopped)
 *
 * Sends items[0:consumed] (each (bytes, address)); errors counts datagrams the kernel refused
 * for a reason other than a full buffer (they are consumed, like the reference's counted
 * OSError); stopped is 1 if the socket would block, 2 if items[consumed] has an address this
 * path does not take (send it with sendto and call again), 0 if everything was consumed. */
static PyObject *
send_batch(PyObject *self, PyObject *args)
{
    int fd, family;
    PyObject *items;
    if (!PyArg_ParseTuple(args, "iiO!", &fd, &family, &PyList_Type, &items))
        return NULL;
    struct mmsghdr messages[CHUNK];
    struct iovec vectors[CHUNK];
    struct sockaddr_storage addresses[CHUNK];
    Py_ssize_t total = PyList_GET_SIZE(items);
    Py_ssize_t done = 0, errors = 0;
    int stopped = 0;
    while (done < total && !stopped) {
        int k = 0;
        PyObject *last_addr = NULL;
        for (Py_ssize_t i = done; i < total && k < CHUNK; i++, k++) {
            PyObject *item = PyList_GET_ITEM(items, i);
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
                !PyBytes_Check(PyTuple_GET_ITEM(item, 0))) {
                stopped = 2;
                break;
            }
            PyObject *data = PyTuple_GET_ITEM(item, 0);
            PyObject *addr = PyTuple_GET_ITEM(item, 1);
            socklen_t alen = 0;
            if (k > 0 && addr == last_addr) {
                /* Consecutive datagrams to one subscriber share its address object. */
                addresses[k] = addresses[k - 1];
                alen = messages[k - 1].msg_hdr.msg_namelen;
            } else if (!parse_address(addr, family, &addresses[k], &alen)) {
                stopped = 2;
                break;
            }
            last_addr = addr;
            vectors[k].iov_base = PyBytes_AS_STRING(data);
            vectors[k].iov_len = (size_t)PyBytes_GET_SIZE(data);
            memset(&messages[k], 0, sizeof(messages[k]));
            messages[k].msg_hdr.msg_name = &addresses[k];
            messages[k].msg_hdr.msg_namelen = alen;
            messages[k].msg_hdr.msg_iov = &vectors[k];
            messages[k].msg_hdr.msg_iovlen = 1;
        }
        if (k == 0)
            break;
        int sent;
        Py_BEGIN_ALLOW_THREADS
        sent = sendmmsg(fd, messages, (unsigned int)k, 0);
        Py_END_ALLOW_THREADS
        if (sent < 0) {
            if (errno == EINTR) {
                if (PyErr_CheckSignals() < 0)
                    return NULL;
                stopped = 0;
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                stopped = 1;
                break;
            }
            /* Refused (e.g. too large, unreachable): count it, drop it, go on. */
            errors++;
            done++;
            stopped = 0;
            continue;
        }
        done += sent;
        if (sent < k)
            stopped = 0; /* the next call reports why the kernel stopped */
    }
    return Py_BuildValue("(nni)", done, errors, stopped);
}

/* ---- recvmmsg ------------------------------------------------------------------------------- */

static char recv_buffers[CHUNK][RECV_SLOT];

/* The kernel's receive time of one datagram (SCM_TIMESTAMPNS, CLOCK_REALTIME) in ns, or 0 when
 * the socket does not have SO_TIMESTAMPNS on. */
static long long
kernel_stamp(struct msghdr *header)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(header); c != NULL; c = CMSG_NXTHDR(header, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec when;
            memcpy(&when, CMSG_DATA(c), sizeof(when));
            return (long long)when.tv_sec * 1000000000LL + when.tv_nsec;
        }
    }
    return 0;
}

/* recv_batch(fd, limit, out, stamps=None) -> (received, truncated, error)
 *
 * Appends up to ``limit`` (data, address) tuples to ``out``. A datagram longer than the slot
 * (9,216 bytes; media is at most ~1,500) is dropped and counted in ``truncated``. ``error`` is
 * 0, or the errno that ended the read other than "would block" (the reference's recvfrom
 * ignores it too: ICMP errors surface on reads). With a ``stamps`` list, each datagram's
 * kernel receive time (see kernel_stamp) is appended to it too: the load generator's measure
 * of when a server's copy reached the subscriber, whatever the generator was busy with. */
static PyObject *
recv_batch(PyObject *self, PyObject *args)
{
    int fd;
    Py_ssize_t limit;
    PyObject *out, *stamps = Py_None;
    if (!PyArg_ParseTuple(args, "inO!|O", &fd, &limit, &PyList_Type, &out, &stamps))
        return NULL;
    if (stamps != Py_None && !PyList_Check(stamps)) {
        PyErr_SetString(PyExc_TypeError, "stamps must be a list or None");
        return NULL;
    }
    int stamped = stamps != Py_None;
    struct mmsghdr messages[CHUNK];
    struct iovec vectors[CHUNK];
    struct sockaddr_storage addresses[CHUNK];
    static union {
        char buffer[CMSG_SPACE(sizeof(struct timespec)) + 64];
        struct cmsghdr align;
    } controls[CHUNK];
    Py_ssize_t received = 0, truncated = 0;
    int error = 0;
    PyObject *last_addr = NULL;
    struct sockaddr_storage last_storage;
    memset(&last_storage, 0, sizeof(last_storage));
    while (received + truncated < limit) {
        Py_ssize_t want = limit - received - truncated;
        int k = want < CHUNK ? (int)want : CHUNK;
        for (int i = 0; i < k; i++) {
            vectors[i].iov_base = recv_buffers[i];
            vectors[i].iov_len = RECV_SLOT;
            memset(&messages[i], 0, sizeof(messages[i]));
            messages[i].msg_hdr.msg_name = &addresses[i];
            messages[i].msg_hdr.msg_namelen = sizeof(addresses[i]);
            messages[i].msg_hdr.msg_iov = &vectors[i];
            messages[i].msg_hdr.msg_iovlen = 1;
            if (stamped) {
                messages[i].msg_hdr.msg_control = controls[i].buffer;
                messages[i].msg_hdr.msg_controllen = sizeof(controls[i].buffer);
            }
        }
        int got = recvmmsg(fd, messages, (unsigned int)k, MSG_DONTWAIT, NULL);
        if (got < 0) {
            if (errno == EINTR) {
                if (PyErr_CheckSignals() < 0) {
                    Py_XDECREF(last_addr);
                    return NULL;
                }
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                error = errno;
            break;
        }
        for (int i = 0; i < got; i++) {
            struct msghdr *header = &messages[i].msg_hdr;
            if (header->msg_flags & MSG_TRUNC) {
                truncated++;
                continue;
            }
            struct sockaddr_storage *storage = &addresses[i];
            PyObject *addr;
            if (last_addr != NULL && header->msg_namelen > 0 &&
                memcmp(storage, &last_storage, header->msg_namelen) == 0) {
                addr = last_addr;
                Py_INCREF(addr);
            } else {
                addr = make_address(storage);
                if (addr == NULL) {
                    Py_XDECREF(last_addr);
                    return NULL;
                }
                Py_XDECREF(last_addr);
                last_addr = addr;
                Py_INCREF(last_addr);
                memcpy(&last_storage, storage, sizeof(last_storage));
            }
            PyObject *data = PyBytes_FromStringAndSize(recv_buffers[i], messages[i].msg_len);
            if (data == NULL) {
                Py_DECREF(addr);
                Py_XDECREF(last_addr);
                return NULL;
            }
            PyObject *item = PyTuple_Pack(2, data, addr);
            Py_DECREF(data);
            Py_DECREF(addr);
            if (item == NULL || PyList_Append(out, item) < 0) {
                Py_XDECREF(item);
                Py_XDECREF(last_addr);
                return NULL;
            }
            Py_DECREF(item);
            if (stamped) {
                PyObject *stamp = PyLong_FromLongLong(kernel_stamp(header));
                if (stamp == NULL || PyList_Append(stamps, stamp) < 0) {
                    Py_XDECREF(stamp);
                    Py_XDECREF(last_addr);
                    return NULL;
                }
                Py_DECREF(stamp);
            }
            received++;
        }
        if (got < k)
            break; /* the queue is empty */
    }
    Py_XDECREF(last_addr);
    return Py_BuildValue("(nni)", received, truncated, error);
}

/* ---- RTP header extensions ------------------------------------------------------------------ */

/* rewrite_one_byte(packet, pos, end, table) -> bytes | None | int
 *
 * router.forwarding.packet._rewrite_one_byte: map the ids of the one-byte-form elements in
 * packet[pos:end] through table (0 or 15+: strip the element by zeroing it in place). bytes if
 * anything changed, None if not, or the int offset of an element that overruns the block (the
 * caller raises the reference's RtpDecodeError). */
static PyObject *
rewrite_one_byte(PyObject *self, PyObject *args)
{
    Py_buffer packet, table;
    Py_ssize_t pos, end;
    if (!PyArg_ParseTuple(args, "y*nny*", &packet, &pos, &end, &table))
        return NULL;
    PyObject *result = NULL;
    const unsigned char *in = packet.buf;
    const unsigned char *map = table.buf;
    if (pos < 0 || end > packet.len || table.len < 16) {
        PyErr_SetString(PyExc_ValueError, "rewrite_one_byte: block outside the packet");
        goto done;
    }
    unsigned char *out = NULL;
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
        Py_ssize_t following = pos + 1 + size;
        if (following > end) {
            Py_CLEAR(result);
            result = PyLong_FromSsize_t(pos);
            goto done;
        }
        int new_id = map[ext_id];
        if (new_id != ext_id) {
            if (result == NULL) {
                result = PyBytes_FromStringAndSize((const char *)in, packet.len);
                if (result == NULL)
                    goto done;
                out = (unsigned char *)PyBytes_AS_STRING(result);
            }
            if (new_id >= 1 && new_id <= 14)
                out[pos] = (unsigned char)((new_id << 4) | (size - 1));
            else
                memset(out + pos, 0, (size_t)(size + 1));
        }
        pos = following;
    }
    if (result == NULL) {
        result = Py_None;
        Py_INCREF(result);
    }
done:
    PyBuffer_Release(&packet);
    PyBuffer_Release(&table);
    return result;
}

/* ---- ingest --------------------------------------------------------------------------------- */

/* Attribute names read per datagram (interned once at import). */
static PyObject *s_closed_reason, *s_rtp_handler, *s_srtp, *s_media_sources, *s_ingest_route,
    *s_rtp_in;

/* getattr(obj, name) or NULL without an exception when obj has no such attribute. */
static PyObject *
optional_attr(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_AttributeError))
        PyErr_Clear();
    return value;
}

/* stats.<name> += delta (SrtpStats: a slots dataclass of ints). */
static int
add_stat(PyObject *stats, PyObject *name, Py_ssize_t delta)
{
    if (delta == 0)
        return 0;
    PyObject *before = PyObject_GetAttr(stats, name);
    if (before == NULL)
        return -1;
    PyObject *step = PyLong_FromSsize_t(delta);
    PyObject *after = step == NULL ? NULL : PyNumber_Add(before, step);
    Py_DECREF(before);
    Py_XDECREF(step);
    if (after == NULL)
        return -1;
    int r = PyObject_SetAttr(stats, name, after);
    Py_DECREF(after);
    return r;
}

/* One datagram of ingest(): 1 when handled here, 0 when the fallback must take it (nothing was
 * changed), -1 on a Python error. */
static int
ingest_one(PyObject *data, PyObject *addr, PyObject *by_addr, PyObject *now)
{
    if (!PyBytes_CheckExact(data))
        return 0;
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
    /* RFC 7983: 128..191 is RTP or RTCP; RTCP packet types 192..223 sit in the second byte
     * (RFC 5761). RTCP, and RTP shorter than its fixed header, take the reference path. */
    if (n < MIN_RTP || p[0] < 128 || p[0] > 191 || (p[1] >= 192 && p[1] <= 223))
        return 0;
    PyObject *peer = PyDict_GetItemWithError(by_addr, addr); /* borrowed */
    if (peer == NULL)
        return PyErr_Occurred() ? -1 : 0;
    Py_INCREF(peer);
    int handled = 0;
    PyObject *closed = NULL, *handler = NULL, *srtp = NULL, *sources = NULL, *route = NULL;
    PyObject *plain = NULL;
    closed = optional_attr(peer, s_closed_reason);
    if (closed == NULL || closed != Py_None)
        goto done;
    handler = optional_attr(peer, s_rtp_handler);
    if (handler == NULL || handler == Py_None)
        goto done;
    srtp = optional_attr(peer, s_srtp);
    if (srtp == NULL || srtp == Py_None)
        goto done;
    /* The peer's own check (PeerTransport._validated): the address is still nominated. */
    sources = optional_attr(peer, s_media_sources);
    if (sources == NULL || !PyDict_Check(sources))
        goto done;
    int known = PyDict_Contains(sources, addr);
    if (known <= 0) {
        handled = known; /* -1 on error, else leave it to the fallback */
        goto done;
    }
    /* (srtp_unprotect address, srtp_t address, min length, max length, stats, count_status) */
    route = optional_attr(srtp, s_ingest_route);
    if (route == NULL || !PyTuple_CheckExact(route) || PyTuple_GET_SIZE(route) != 6)
        goto done;
    unsigned long long func_addr = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(route, 0));
    unsigned long long session_addr = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(route, 1));
    Py_ssize_t min_length = PyLong_AsSsize_t(PyTuple_GET_ITEM(route, 2));
    Py_ssize_t max_length = PyLong_AsSsize_t(PyTuple_GET_ITEM(route, 3));
    if (PyErr_Occurred()) {
        handled = -1;
        goto done;
    }
    if (n < min_length || n > max_length)
        goto done; /* counted as bad_length by the reference */
    plain = PyBytes_FromStringAndSize((const char *)p, n);
    if (plain == NULL) {
        handled = -1;
        goto done;
    }
    int length = (int)n;
    srtp_func unprotect = (srtp_func)(uintptr_t)func_addr;
    int status = unprotect((void *)(uintptr_t)session_addr, PyBytes_AS_STRING(plain), &length);
    handled = 1;
    if (status == 0 && (length < MIN_RTP || length > n))
        status = -1; /* cannot happen with libsrtp; counted as "other" if it ever did */
    if (status != 0) {
        PyObject *code = PyLong_FromLong(status);
        PyObject *counted =
            code == NULL ? NULL : PyObject_CallOneArg(PyTuple_GET_ITEM(route, 5), code);
        if (counted == NULL)
            handled = -1;
        Py_XDECREF(counted);
        Py_XDECREF(code);
        goto done;
    }
    if (_PyBytes_Resize(&plain, length) < 0) {
        handled = -1;
        goto done;
    }
    if (add_stat(PyTuple_GET_ITEM(route, 4), s_rtp_in, 1) < 0) {
        handled = -1;
        goto done;
    }
    PyObject *args[3] = {peer, plain, now};
    PyObject *result = PyObject_Vectorcall(handler, args, 3, NULL);
    if (result == NULL)
        handled = -1;
    Py_XDECREF(result);
done:
    if (handled >= 0 && PyErr_Occurred())
        handled = -1;
    Py_XDECREF(plain);
    Py_XDECREF(route);
    Py_XDECREF(sources);
    Py_XDECREF(srtp);
    Py_XDECREF(handler);
    Py_XDECREF(closed);
    Py_DECREF(peer);
    return handled;
}

/* ingest(batch, by_addr, fallback, now) -> None
 *
 * TransportMux.receive_datagram over a batch, with its commonest case compiled: SRTP (RTP, not
 * RTCP) from an address in ``by_addr`` (the mux's table of validated addresses) whose peer is
 * open, has SRTP keys and an ``rtp_handler``, and still lists the address in its
 * ``media_sources`` is decrypted here - libsrtp's ``srtp_unprotect`` on the peer's own session,
 * from ``SrtpContext.ingest_route`` - and handed to ``peer.rtp_handler(peer, plain, now)``,
 * counted in the context's stats as the reference counts it. Every other datagram (STUN, DTLS,
 * RTCP, unknown addresses, closed peers, bad lengths) goes to ``fallback(data, addr, now)``, the
 * mux's Python path, which counts what it drops. Order is kept: each datagram is looked up when
 * its turn comes, after everything before it changed what it had to. */
static PyObject *
ingest(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyList_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "ingest(batch: list, by_addr: dict, fallback, now)");
        return NULL;
    }
    PyObject *batch = args[0], *by_addr = args[1], *fallback = args[2], *now = args[3];
    /* The size is read every round: a handler may run Python code (it must not change the
     * batch, but nothing here trusts that). */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(batch); i++) {
        PyObject *item = PyList_GET_ITEM(batch, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "ingest: batch items must be (data, address)");
            return NULL;
        }
        Py_INCREF(item);
        PyObject *data = PyTuple_GET_ITEM(item, 0), *addr = PyTuple_GET_ITEM(item, 1);
        int handled = ingest_one(data, addr, by_addr, now);
        if (handled == 0) {
            PyObject *call[3] = {data, addr, now};
            PyObject *result = PyObject_Vectorcall(fallback, call, 3, NULL);
            handled = result == NULL ? -1 : 1;
            Py_XDECREF(result);
        }
        Py_DECREF(item);
        if (handled < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- protect_copies ------------------------------------------------------------------------- */

static PyObject *s_dest, *s_out, *s_protect_route, *s_rtp_out, *s_protect_failures;

/* One sink as protect_copies resolved it for this call: where its copies go, with what. */
typedef struct {
    PyObject *fid;    /* borrowed from the copies (the forwarder's one string per subscriber) */
    PyObject *dest;   /* NULL: Python takes this sink's copies */
    PyObject *outbox;
    PyObject *stats;
    srtp_func protect;
    void *session;
    Py_ssize_t max_length, trailer, queued, failed;
    Py_ssize_t head, tail; /* this sink's copies, chained through protect_copies' `next` */
} SinkRoute;

#define SINK_ROUTES 64

static void
release_routes(SinkRoute *routes, int count)
{
    for (int i = 0; i < count; i++) {
        Py_XDECREF(routes[i].dest);
        Py_XDECREF(routes[i].outbox);
        Py_XDECREF(routes[i].stats);
    }
}

/* Resolve `sink` (BaseTransport.send_rtp_batch's checks and its SRTP context's
 * protect_route) into `route`; route->dest stays NULL when Python must take its copies. */
static int
resolve_sink(PyObject *sink, SinkRoute *route)
{
    int result = 0;
    PyObject *dest = NULL, *srtp = NULL, *outbox = NULL, *found = NULL;
    dest = optional_attr(sink, s_dest);
    if (dest == NULL || dest == Py_None)
        goto done;
    srtp = optional_attr(sink, s_srtp);
    if (srtp == NULL || srtp == Py_None)
        goto done;
    outbox = optional_attr(sink, s_out);
    if (outbox == NULL || !PyList_CheckExact(outbox))
        goto done;
    /* (srtp_protect address, session address, max length, trailer, stats) */
    found = optional_attr(srtp, s_protect_route);
    if (found == NULL || !PyTuple_CheckExact(found) || PyTuple_GET_SIZE(found) != 5)
        goto done;
    unsigned long long func_addr = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(found, 0));
    unsigned long long session_addr = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(found, 1));
    Py_ssize_t max_length = PyLong_AsSsize_t(PyTuple_GET_ITEM(found, 2));
    Py_ssize_t trailer = PyLong_AsSsize_t(PyTuple_GET_ITEM(found, 3));
    if (PyErr_Occurred()) {
        result = -1;
        goto done;
    }
    route->protect = (srtp_func)(uintptr_t)func_addr;
    route->session = (void *)(uintptr_t)session_addr;
    route->max_length = max_length;
    route->trailer = trailer;
    route->stats = PyTuple_GET_ITEM(found, 4);
    Py_INCREF(route->stats);
    route->dest = dest;
    route->outbox = outbox;
    dest = outbox = NULL; /* the route holds them now */
done:
    if (result == 0 && PyErr_Occurred())
        result = -1;
    Py_XDECREF(found);
    Py_XDECREF(outbox);
    Py_XDECREF(srtp);
    Py_XDECREF(dest);
    return result;
}

/* One copy on a resolved route: 0 done (queued or counted as a protect failure), -1 error. */
static int
protect_one(SinkRoute *route, PyObject *data)
{
    int r = protect_into(route->protect, route->session, data, route->max_length,
                         route->trailer, route->dest, route->outbox);
    if (r < 0)
        return -1;
    if (r)
        route->queued++;
    else
        route->failed++;
    return 0;
}

/* protect_copies(copies, sinks) -> (queued, rest)
 *
 * ForwarderPlane.flush for the forwarder's queued (participant, plain RTP) copies whose sink
 * is a transport that may send (BaseTransport.send_rtp_batch's checks; its SRTP context's
 * ``protect_route``): each is protected with libsrtp's srtp_protect on that sink's session (as
 * protect_batch does) and queued on the sink's outbox, sink by sink in the order the sinks
 * first appear and each sink's copies in the order the forwarder queued them (the reference's
 * grouping and order); each sink is resolved once per call and its counters (rtp_out,
 * protect_failures) updated once. Copies for an unknown participant are
 * dropped (as the reference drops them); ``rest`` holds, in order, the copies for every other
 * sink (trunk legs, transports that may not send now), for the reference to group and hand on.
 * No Python code runs between the copies, so a sink's state cannot change during a call. */
static PyObject *
protect_copies(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "protect_copies(copies: list, sinks: dict)");
        return NULL;
    }
    PyObject *copies = args[0], *sinks = args[1];
    PyObject *rest = PyList_New(0);
    if (rest == NULL)
        return NULL;
    SinkRoute routes[SINK_ROUTES];
    int count = 0, last = -1;
    Py_ssize_t queued = 0, total = PyList_GET_SIZE(copies);
    /* Pass one chains each copy to its sink; pass two protects sink by sink, in the order
     * the sinks first appear (the reference's grouping: each libsrtp session's state stays in
     * cache for its run of packets, and the datagrams leave in the reference's order). */
    Py_ssize_t *next = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(total ? total : 1));
    if (next == NULL) {
        Py_DECREF(rest);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < total; i++) {
        PyObject *item = PyList_GET_ITEM(copies, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "protect_copies: copies must be (participant, rtp)");
            goto error;
        }
        PyObject *fid = PyTuple_GET_ITEM(item, 0);
        SinkRoute *route = NULL;
        if (last >= 0 && routes[last].fid == fid) {
            route = &routes[last];
        } else {
            for (int k = 0; k < count; k++) {
                if (routes[k].fid == fid) {
                    route = &routes[k];
                    last = k;
                    break;
                }
            }
        }
        if (route == NULL) {
            PyObject *sink = PyDict_GetItemWithError(sinks, fid); /* borrowed */
            if (sink == NULL) {
                if (PyErr_Occurred())
                    goto error;
                continue; /* the participant left: dropped, as the reference drops it */
            }
            if (count == SINK_ROUTES) { /* more sinks than fit: Python takes the rest */
                if (PyList_Append(rest, item) < 0)
                    goto error;
                continue;
            }
            route = &routes[count];
            memset(route, 0, sizeof(*route));
            route->fid = fid;
            route->head = route->tail = -1;
            Py_INCREF(sink);
            int r = resolve_sink(sink, route);
            Py_DECREF(sink);
            last = count++;
            if (r < 0)
                goto error;
        }
        if (route->dest == NULL) {
            /* Python takes every copy of a sink it must take, so its order holds. */
            if (PyList_Append(rest, item) < 0)
                goto error;
            continue;
        }
        next[i] = -1;
        if (route->tail < 0)
            route->head = i;
        else
            next[route->tail] = i;
        route->tail = i;
    }
    for (int k = 0; k < count; k++) {
        SinkRoute *route = &routes[k];
        if (route->dest == NULL)
            continue;
        for (Py_ssize_t i = route->head; i >= 0; i = next[i]) {
            /* The list is the caller's: only items pass one checked are read, and nothing
             * here runs Python code that could change it. */
            if (protect_one(route, PyTuple_GET_ITEM(PyList_GET_ITEM(copies, i), 1)) < 0)
                goto error;
        }
        queued += route->queued;
        if (add_stat(route->stats, s_rtp_out, route->queued) < 0 ||
            add_stat(route->stats, s_protect_failures, route->failed) < 0)
            goto error;
    }
    release_routes(routes, count);
    PyMem_Free(next);
    return Py_BuildValue("(nN)", queued, rest);
error:
    release_routes(routes, count);
    PyMem_Free(next);
    Py_DECREF(rest);
    return NULL;
}

static PyMethodDef methods[] = {
    {"rewrite_one_byte", rewrite_one_byte, METH_VARARGS,
     "rewrite_one_byte(packet, pos, end, table) -> bytes | None | int"},
    {"protect_batch", protect_batch, METH_VARARGS,
     "protect_batch(func, session, packets, max_length, trailer, dest, out) -> failed"},
    {"send_batch", send_batch, METH_VARARGS,
     "send_batch(fd, family, items) -> (consumed, errors, stopped)"},
    {"recv_batch", recv_batch, METH_VARARGS,
     "recv_batch(fd, limit, out, stamps=None) -> (received, truncated, error)"},
    {"ingest", (PyCFunction)(void (*)(void))ingest, METH_FASTCALL,
     "ingest(batch, by_addr, fallback, now) -> None"},
    {"protect_copies", (PyCFunction)(void (*)(void))protect_copies, METH_FASTCALL,
     "protect_copies(copies, sinks) -> (queued, rest)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "router.transport._fastpath",
    "Compiled twins of the router's per-packet loops (see router/transport/fastpath.py).", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    s_closed_reason = PyUnicode_InternFromString("closed_reason");
    s_rtp_handler = PyUnicode_InternFromString("rtp_handler");
    s_srtp = PyUnicode_InternFromString("srtp");
    s_media_sources = PyUnicode_InternFromString("media_sources");
    s_ingest_route = PyUnicode_InternFromString("ingest_route");
    s_rtp_in = PyUnicode_InternFromString("rtp_in");
    s_dest = PyUnicode_InternFromString("_dest");
    s_out = PyUnicode_InternFromString("_out");
    s_protect_route = PyUnicode_InternFromString("protect_route");
    s_rtp_out = PyUnicode_InternFromString("rtp_out");
    s_protect_failures = PyUnicode_InternFromString("protect_failures");
    if (s_dest == NULL || s_out == NULL || s_protect_route == NULL || s_rtp_out == NULL ||
        s_protect_failures == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    if (s_closed_reason == NULL || s_rtp_handler == NULL || s_srtp == NULL ||
        s_media_sources == NULL || s_ingest_route == NULL || s_rtp_in == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "CHUNK", CHUNK) < 0 ||
        PyModule_AddIntConstant(m, "RECV_SLOT", RECV_SLOT) < 0 ||
        PyModule_AddIntConstant(m, "SO_TIMESTAMPNS", SO_TIMESTAMPNS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
