/*
 * _pshm.c — the Python extension: a thin layer over libpshm's public API.
 *
 * Three types, each owning one libpshm handle:
 *   Block    a pshm_block; exports its bytes through the buffer protocol
 *            (memoryview(block) is SharedMemory.buf). A Block may also
 *            borrow the block of a List, which it then keeps alive.
 *   List     a pshm_list; item access in C (sl[i] never runs Python code),
 *            the base class of pshm.ShareableList.
 *   Manager  a pshm_manager (client of a manager server, or its starter).
 * The CPython-compatible classes are written in Python on top of these
 * (shared_memory.py, managers.py), as CPython's own module sits on
 * _posixshmem and mmap.
 *
 * Errors map to the exceptions CPython raises for the same mistake: a
 * missing block is FileNotFoundError with the filename "/name", as
 * _posixshmem reports it; see raise_pshm().
 *
 * Every call that may block (creating with populate, attaching, which may
 * wait for a foreign lock, every manager request) runs without the GIL.
 * Works with CPython 3.8 to 3.13: only API present in all of them is used.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pshm.h"

#include <errno.h>
#include <string.h>

/* libpshm's version as text, from the header's numbers (the one place). */
#define PSHM_STR_(x) #x
#define PSHM_STR(x) PSHM_STR_(x)
#define PSHM_VERSION_TEXT                                                                    \
    PSHM_STR(PSHM_VERSION_MAJOR)                                                             \
    "." PSHM_STR(PSHM_VERSION_MINOR) "." PSHM_STR(PSHM_VERSION_PATCH)

static PyObject *struct_error;         /* struct.error, as CPython's list raises */
static PyObject *authentication_error; /* multiprocessing.AuthenticationError */

/* ---- errors ------------------------------------------------------------ */

/* An OSError whose subclass Python picks from errno (FileNotFoundError...),
 * with the message CPython's _posixshmem gives and filename "/name". */
static PyObject *raise_os(int errnum, const char *name)
{
    if (name != NULL && name[0] == '/')
        name++; /* as given by the caller; reported as "/" + bare name */
    PyObject *filename = name ? PyUnicode_FromFormat("/%s", name) : Py_None;
    if (filename == NULL)
        return NULL;
    if (name == NULL)
        Py_INCREF(filename);
    PyObject *exc =
        PyObject_CallFunction(PyExc_OSError, "isO", errnum, strerror(errnum), filename);
    Py_DECREF(filename);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* Raise the exception for libpshm's code rc (the last call's message). */
static PyObject *raise_pshm(int rc, const char *name)
{
    const char *msg = pshm_last_error();
    switch (rc) {
    case PSHM_ENOENT: return raise_os(ENOENT, name);
    case PSHM_EEXIST: return raise_os(EEXIST, name);
    case PSHM_EACCES: return raise_os(EACCES, name);
    case PSHM_EBUSY: return raise_os(EBUSY, name);
    case PSHM_ERANGE: PyErr_SetString(PyExc_IndexError, "index out of range"); return NULL;
    case PSHM_ETOOBIG:
        PyErr_SetString(PyExc_ValueError, "bytes/str item exceeds available storage");
        return NULL;
    case PSHM_ETYPE: PyErr_SetString(PyExc_TypeError, msg); return NULL;
    case PSHM_EAUTH: PyErr_SetString(authentication_error, msg); return NULL;
    case PSHM_ECONN:
    case PSHM_EPROTO: PyErr_SetString(PyExc_ConnectionError, msg); return NULL;
    case PSHM_EINVAL:
    case PSHM_EBADNAME:
    case PSHM_EBADSIZE:
    case PSHM_ECLOSED:
    case PSHM_ECORRUPT:
    case PSHM_EADDR:
    case PSHM_ESYNTAX: PyErr_SetString(PyExc_ValueError, msg); return NULL;
    default: PyErr_SetString(PyExc_OSError, msg); return NULL; /* ELIMIT, ESYS */
    }
}

/* A str argument as UTF-8 without NUL bytes (ValueError as CPython's). */
static const char *utf8_name(PyObject *name)
{
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(name, &len);
    if (s != NULL && strlen(s) != (size_t)len) {
        PyErr_SetString(PyExc_ValueError, "embedded null character");
        return NULL;
    }
    return s;
}

/* ---- Block --------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    pshm_block *block;
    PyObject *owner;    /* the List whose block this is, or NULL: ours */
    Py_ssize_t exports; /* buffers handed out and not released */
    int readonly;       /* mapped read-only: buffers are read-only too */
} BlockObject;

static PyTypeObject Block_Type;

static PyObject *block_wrap(pshm_block *b, PyObject *owner, int readonly)
{
    BlockObject *self = PyObject_New(BlockObject, &Block_Type);
    if (self == NULL) {
        if (owner == NULL)
            pshm_block_free(b);
        return NULL;
    }
    self->block = b;
    self->owner = owner;
    Py_XINCREF(owner);
    self->exports = 0;
    self->readonly = readonly;
    return (PyObject *)self;
}

/* Block(name, create, size, track, readonly, populate), all positional:
 * without the keyword parser, every create and attach runs several hundred
 * fewer instructions (callgrind). */
static PyObject *Block_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *name_obj;
    int create, track, readonly, populate;
    Py_ssize_t size;
    (void)type;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) > 0) {
        PyErr_SetString(PyExc_TypeError, "Block() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "Upnppp:Block", &name_obj, &create, &size, &track, &readonly,
                          &populate))
        return NULL;
    const char *name = utf8_name(name_obj);
    if (name == NULL)
        return NULL;
    /* Mapped at the first buffer (Block_getbuffer), unless populate asks
     * for every page now. */
    unsigned flags = (track ? 0 : PSHM_UNTRACKED) | (readonly ? PSHM_READONLY : 0) |
                     (populate ? PSHM_POPULATE : PSHM_NOMAP);
    pshm_block *b = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = create ? pshm_block_create(&b, name, (size_t)size, flags)
                : pshm_block_attach(&b, name, flags);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        return raise_pshm(rc, name);
    return block_wrap(b, NULL, readonly);
}

static void Block_dealloc(BlockObject *self)
{
    if (self->owner != NULL)
        Py_DECREF(self->owner); /* the List frees its own block */
    else
        pshm_block_free(self->block);
    PyObject_Del(self);
}

static int Block_getbuffer(BlockObject *self, Py_buffer *view, int flags)
{
    if (!pshm_block_is_open(self->block)) {
        PyErr_SetString(PyExc_ValueError, "operation on a closed shared memory block");
        return -1;
    }
    int rc = pshm_block_map(self->block); /* 0 at once if mapped */
    if (rc < 0) {
        raise_pshm(rc, pshm_block_name(self->block));
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)self, pshm_block_buf(self->block),
                          (Py_ssize_t)pshm_block_size(self->block), self->readonly,
                          flags) < 0)
        return -1;
    self->exports++;
    return 0;
}

static void Block_releasebuffer(BlockObject *self, Py_buffer *view)
{
    (void)view;
    self->exports--;
}

static Py_ssize_t list_views(PyObject *list);

static PyObject *Block_close(BlockObject *self, PyObject *unused)
{
    (void)unused;
    if (self->exports > 0 || (self->owner != NULL && list_views(self->owner) > 0)) {
        PyErr_SetString(PyExc_BufferError, "cannot close exported pointers exist");
        return NULL;
    }
    int rc = pshm_block_close(self->block);
    return rc < 0 ? raise_pshm(rc, pshm_block_name(self->block))
                  : (Py_INCREF(Py_None), Py_None);
}

static PyObject *Block_unlink(BlockObject *self, PyObject *unused)
{
    (void)unused;
    int rc = pshm_block_unlink(self->block);
    return rc < 0 ? raise_pshm(rc, pshm_block_name(self->block))
                  : (Py_INCREF(Py_None), Py_None);
}

static PyObject *Block_get_name(BlockObject *self, void *closure)
{
    (void)closure;
    return PyUnicode_FromString(pshm_block_name(self->block));
}

static PyObject *Block_get_size(BlockObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(pshm_block_size(self->block));
}

static PyObject *Block_get_closed(BlockObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(!pshm_block_is_open(self->block));
}

static PyMethodDef Block_methods[] = {
    {"close", (PyCFunction)Block_close, METH_NOARGS,
     "Unmap this handle (the block stays). BufferError while buffers are exported."},
    {"unlink", (PyCFunction)Block_unlink, METH_NOARGS,
     "Remove the block's name; mappings stay valid."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Block_getset[] = {
    {"name", (getter)Block_get_name, NULL, "the block's name, without a leading '/'", NULL},
    {"size", (getter)Block_get_size, NULL, "size in bytes", NULL},
    {"closed", (getter)Block_get_closed, NULL, "whether this handle is closed", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyBufferProcs Block_as_buffer = {(getbufferproc)Block_getbuffer,
                                        (releasebufferproc)Block_releasebuffer};

/* ---- values --------------------------------------------------------------- */

/*
 * Convert a Python object as CPython's ShareableList does: exactly int,
 * float, bool, str, bytes or None (a subclass is a KeyError there too, from
 * its type table); an int outside int64 is struct.error. The str/bytes
 * pointer borrows from `obj`, which the caller keeps alive.
 */
static int value_from(PyObject *obj, pshm_value *v)
{
    PyTypeObject *t = Py_TYPE(obj);
    if (t == &PyBool_Type) {
        *v = pshm_bool(obj == Py_True);
    } else if (t == &PyLong_Type) {
        int overflow;
        long long i = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow) {
            PyErr_SetString(struct_error,
                            "'q' format requires -9223372036854775808 <= "
                            "number <= 9223372036854775807");
            return -1;
        }
        *v = pshm_int(i);
    } else if (t == &PyFloat_Type) {
        *v = pshm_float(PyFloat_AS_DOUBLE(obj));
    } else if (t == &PyUnicode_Type) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(obj, &len);
        if (s == NULL)
            return -1;
        *v = pshm_strn(s, (size_t)len);
    } else if (t == &PyBytes_Type) {
        *v = pshm_bytes(PyBytes_AS_STRING(obj), (size_t)PyBytes_GET_SIZE(obj));
    } else if (obj == Py_None) {
        *v = pshm_none();
    } else {
        PyErr_SetObject(PyExc_KeyError, (PyObject *)t);
        return -1;
    }
    return 0;
}

static PyObject *value_to(const pshm_value *v)
{
    switch (v->type) {
    case PSHM_INT: return PyLong_FromLongLong(v->u.i);
    case PSHM_FLOAT: return PyFloat_FromDouble(v->u.f);
    case PSHM_BOOL: return PyBool_FromLong(v->u.b);
    case PSHM_STR: return PyUnicode_DecodeUTF8(v->u.s.ptr, (Py_ssize_t)v->u.s.len, "strict");
    case PSHM_BYTES: return PyBytes_FromStringAndSize(v->u.s.ptr, (Py_ssize_t)v->u.s.len);
    default: Py_RETURN_NONE;
    }
}

/* A sequence as values; *keep holds the objects they borrow from. */
static pshm_value *values_from(PyObject *seq, Py_ssize_t *n, PyObject **keep)
{
    *keep = PySequence_Fast(seq, "a ShareableList is made from a sequence");
    if (*keep == NULL)
        return NULL;
    *n = PySequence_Fast_GET_SIZE(*keep);
    pshm_value *values = PyMem_New(pshm_value, *n > 0 ? *n : 1);
    if (values == NULL) {
        Py_CLEAR(*keep);
        return (pshm_value *)PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < *n; i++) {
        if (value_from(PySequence_Fast_GET_ITEM(*keep, i), &values[i]) < 0) {
            PyMem_Free(values);
            Py_CLEAR(*keep);
            return NULL;
        }
    }
    return values;
}

/* ---- List ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *dict; /* instance attributes of subclasses (ShareableList.shm) */
    pshm_list *list;
    int readonly;
    Py_ssize_t views; /* live View objects on this list's block */
} ListObject;

static Py_ssize_t list_views(PyObject *list) { return ((ListObject *)list)->views; }

static int list_ready(ListObject *self)
{
    if (self->list != NULL)
        return 0;
    PyErr_SetString(PyExc_ValueError, "the list is not attached to a block");
    return -1;
}

static int list_adopt(ListObject *self, pshm_list *l)
{
    if (self->list != NULL) {
        pshm_list_free(l);
        PyErr_SetString(PyExc_ValueError, "the list is already attached to a block");
        return -1;
    }
    self->list = l;
    return 0;
}

/* _create(values, name or None, track) */
static PyObject *List_create(ListObject *self, PyObject *args)
{
    PyObject *seq, *name_obj;
    int track;
    if (!PyArg_ParseTuple(args, "OOp", &seq, &name_obj, &track))
        return NULL;
    const char *name = name_obj == Py_None ? NULL : utf8_name(name_obj);
    if (name_obj != Py_None && name == NULL)
        return NULL;
    Py_ssize_t n;
    PyObject *keep;
    pshm_value *values = values_from(seq, &n, &keep);
    if (values == NULL)
        return NULL;
    pshm_list *l = NULL;
    int rc = pshm_list_create(&l, name, values, (size_t)n, track ? 0 : PSHM_UNTRACKED);
    PyMem_Free(values);
    Py_DECREF(keep);
    if (rc < 0)
        return raise_pshm(rc, name);
    return list_adopt(self, l) < 0 ? NULL : (Py_INCREF(Py_None), Py_None);
}

/* _attach(name, track, readonly) */
static PyObject *List_attach(ListObject *self, PyObject *args)
{
    PyObject *name_obj;
    int track, readonly;
    if (!PyArg_ParseTuple(args, "Upp", &name_obj, &track, &readonly))
        return NULL;
    const char *name = utf8_name(name_obj);
    if (name == NULL)
        return NULL;
    unsigned flags = (track ? 0 : PSHM_UNTRACKED) | (readonly ? PSHM_READONLY : 0);
    pshm_list *l = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = pshm_list_attach(&l, name, flags);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        return raise_pshm(rc, name);
    self->readonly = readonly;
    return list_adopt(self, l) < 0 ? NULL : (Py_INCREF(Py_None), Py_None);
}

static Py_ssize_t List_length(ListObject *self)
{
    return list_ready(self) < 0 ? -1 : (Py_ssize_t)pshm_list_len(self->list);
}

/* An index as CPython's list takes it: anything with __index__. */
static int index_of(PyObject *key, int64_t *index)
{
    if (!PyIndex_Check(key)) {
        PyErr_Format(PyExc_TypeError, "list indices must be integers, not %.200s",
                     Py_TYPE(key)->tp_name);
        return -1;
    }
    Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
        return -1;
    *index = i;
    return 0;
}

static PyObject *list_get(ListObject *self, int64_t index)
{
    if (list_ready(self) < 0)
        return NULL;
    pshm_value v;
    int rc = pshm_list_get(self->list, index, &v);
    if (rc < 0)
        return raise_pshm(rc, pshm_block_name(pshm_list_block(self->list)));
    return value_to(&v);
}

static PyObject *List_item(ListObject *self, Py_ssize_t i) { return list_get(self, i); }

static PyObject *List_subscript(ListObject *self, PyObject *key)
{
    int64_t index;
    return index_of(key, &index) < 0 ? NULL : list_get(self, index);
}

static int List_ass_subscript(ListObject *self, PyObject *key, PyObject *obj)
{
    int64_t index;
    pshm_value v;
    if (list_ready(self) < 0 || index_of(key, &index) < 0)
        return -1;
    if (obj == NULL) {
        PyErr_SetString(PyExc_TypeError, "a ShareableList's items cannot be deleted");
        return -1;
    }
    if (value_from(obj, &v) < 0)
        return -1;
    int rc = pshm_list_set(self->list, index, v);
    if (rc == PSHM_ERANGE) {
        PyErr_SetString(PyExc_IndexError, "assignment index out of range");
        return -1;
    }
    return rc < 0 ? (raise_pshm(rc, pshm_block_name(pshm_list_block(self->list))), -1) : 0;
}

static PyObject *List_raw(ListObject *self, PyObject *arg)
{
    int64_t index;
    if (list_ready(self) < 0 || index_of(arg, &index) < 0)
        return NULL;
    const void *p;
    size_t n;
    int rc = pshm_list_raw(self->list, index, &p, &n);
    if (rc < 0)
        return raise_pshm(rc, pshm_block_name(pshm_list_block(self->list)));
    return PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
}

static PyObject *List_block(ListObject *self, PyObject *unused)
{
    (void)unused;
    if (list_ready(self) < 0)
        return NULL;
    return block_wrap(pshm_list_block(self->list), (PyObject *)self, self->readonly);
}

static PyObject *List_get_format(ListObject *self, void *closure)
{
    (void)closure;
    char *text;
    if (list_ready(self) < 0)
        return NULL;
    int rc = pshm_list_format(self->list, &text);
    if (rc < 0)
        return raise_pshm(rc, pshm_block_name(pshm_list_block(self->list)));
    PyObject *s = PyUnicode_FromString(text);
    free(text);
    return s;
}

static void List_dealloc(ListObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->dict);
    pshm_list_free(self->list);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int List_traverse(ListObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->dict);
    return 0;
}

static int List_clear(ListObject *self)
{
    Py_CLEAR(self->dict);
    return 0;
}

/* ---- View: the int64 or double values of a list, in place -------------- */

typedef struct {
    PyObject_HEAD
    ListObject *list; /* keeps the list, and so its mapping, alive */
    pshm_view view;
    Py_ssize_t shape, stride;
} ViewObject;

static PyTypeObject View_Type;

/* _view(start, stop): a View of items [start, stop), all int or all float
 * (the type of item `start` decides which). */
static PyObject *List_view(ListObject *self, PyObject *args)
{
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "nn", &start, &stop) || list_ready(self) < 0)
        return NULL;
    Py_ssize_t len = (Py_ssize_t)pshm_list_len(self->list);
    if (start < 0 || stop < start || stop > len) {
        PyErr_Format(PyExc_IndexError,
                     "view range [%zd, %zd) is not within the list's %zd items", start, stop,
                     len);
        return NULL;
    }
    pshm_value first = {.type = PSHM_INT};
    int rc = stop > start ? pshm_list_get(self->list, start, &first) : 0;
    if (rc < 0)
        return raise_pshm(rc, pshm_block_name(pshm_list_block(self->list)));
    pshm_type type = first.type == PSHM_FLOAT ? PSHM_FLOAT : PSHM_INT;
    ViewObject *v = PyObject_New(ViewObject, &View_Type);
    if (v == NULL)
        return NULL;
    v->list = NULL;
    rc = pshm_list_view_range(self->list, type, (size_t)start, (size_t)(stop - start),
                              &v->view);
    if (rc < 0) {
        Py_DECREF(v);
        return raise_pshm(rc, pshm_block_name(pshm_list_block(self->list)));
    }
    Py_INCREF(self);
    v->list = self;
    self->views++;
    v->shape = stop - start;
    v->stride = 8;
    return (PyObject *)v;
}

static void View_dealloc(ViewObject *self)
{
    if (self->list != NULL) {
        self->list->views--;
        Py_DECREF(self->list);
    }
    PyObject_Del(self);
}

static int View_getbuffer(ViewObject *self, Py_buffer *b, int flags)
{
    if ((flags & PyBUF_WRITABLE) && self->list->readonly) {
        PyErr_SetString(PyExc_BufferError, "the list is attached read-only");
        return -1;
    }
    void *values =
        self->view.type == PSHM_INT ? (void *)self->view.ints : (void *)self->view.floats;
    b->obj = (PyObject *)self;
    Py_INCREF(self);
    b->buf = values;
    b->len = self->shape * 8;
    b->readonly = self->list->readonly;
    b->itemsize = 8;
    b->format = (flags & PyBUF_FORMAT) ? (self->view.type == PSHM_INT ? "q" : "d") : NULL;
    b->ndim = 1;
    b->shape = (flags & PyBUF_ND) ? &self->shape : NULL;
    b->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? &self->stride : NULL;
    b->suboffsets = NULL;
    b->internal = NULL;
    return 0;
}

static PyObject *View_valid(ViewObject *self, PyObject *unused)
{
    (void)unused;
    int rc = pshm_list_view_check(&self->view);
    if (rc == PSHM_ETYPE)
        Py_RETURN_FALSE;
    return rc < 0 ? raise_pshm(rc, NULL) : (Py_INCREF(Py_True), Py_True);
}

static PyMethodDef View_methods[] = {
    {"valid", (PyCFunction)View_valid, METH_NOARGS,
     "Whether every item of the view still has its type (False once any process\n"
     "changed one: values read since may be of another type)."},
    {NULL, NULL, 0, NULL}};

static PyBufferProcs View_as_buffer = {(getbufferproc)View_getbuffer, NULL};

// clang-format off: PyVarObject_HEAD_INIT brings its own comma
static PyTypeObject View_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pshm._pshm.View",
    .tp_basicsize = sizeof(ViewObject),
    .tp_dealloc = (destructor)View_dealloc,
    .tp_as_buffer = &View_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The int64 (format 'q') or double ('d') values of a shareable list, in place.",
    .tp_methods = View_methods,
};
// clang-format on

static PyMethodDef List_methods[] = {
    {"_create", (PyCFunction)List_create, METH_VARARGS, NULL},
    {"_attach", (PyCFunction)List_attach, METH_VARARGS, NULL},
    {"_block", (PyCFunction)List_block, METH_NOARGS, NULL},
    {"_view", (PyCFunction)List_view, METH_VARARGS, NULL},
    {"raw", (PyCFunction)List_raw, METH_O,
     "raw(index) -> bytes: the item's whole allocated storage, NUL bytes included\n"
     "(a pshm addition: CPython strips trailing NULs from str and bytes)."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef List_getset[] = {
    {"format", (getter)List_get_format, NULL,
     "The struct packing format used by all currently stored items.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PySequenceMethods List_as_sequence = {
    .sq_length = (lenfunc)List_length,
    .sq_item = (ssizeargfunc)List_item,
};

static PyMappingMethods List_as_mapping = {
    .mp_length = (lenfunc)List_length,
    .mp_subscript = (binaryfunc)List_subscript,
    .mp_ass_subscript = (objobjargproc)List_ass_subscript,
};

/* ---- Manager -------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    pshm_manager *mgr;       /* NULL after shutdown or disconnect */
    PyThread_type_lock lock; /* held around every use of mgr */
} ManagerObject;

static PyTypeObject Manager_Type;
static PyTypeObject List_Type;

/* What MANAGER_CALL gives when the handle was shut down or disconnected. */
#define MANAGER_GONE 1

/*
 * Run `call` (which uses self->mgr) with the GIL released and the handle's
 * lock held, into rc. Calls on one handle take turns (the library
 * serialises a handle's requests anyway), so a shutdown or disconnect in
 * one thread never frees the handle under another thread's request.
 */
#define MANAGER_CALL(self, rc, call)                                                         \
    do {                                                                                     \
        Py_BEGIN_ALLOW_THREADS                                                               \
        PyThread_acquire_lock((self)->lock, WAIT_LOCK);                                      \
        (rc) = (self)->mgr != NULL ? (call) : MANAGER_GONE;                                  \
        PyThread_release_lock((self)->lock);                                                 \
        Py_END_ALLOW_THREADS                                                                 \
    } while (0)

/* End the handle, under its lock: shutdown (which frees it, also on error)
 * or disconnect. */
static int manager_end(ManagerObject *self, bool shutdown)
{
    pshm_manager *m = self->mgr;
    self->mgr = NULL;
    if (shutdown)
        return pshm_manager_shutdown(m);
    pshm_manager_disconnect(m);
    return 0;
}

static PyObject *raise_manager(int rc)
{
    if (rc != MANAGER_GONE)
        return raise_pshm(rc, NULL);
    PyErr_SetString(PyExc_ValueError, "the manager connection is closed");
    return NULL;
}

/* Manager(address or None, authkey or None, start) */
static PyObject *Manager_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"address", "authkey", "start", NULL};
    const char *address = NULL;
    Py_buffer key = {.buf = NULL, .len = 0};
    int start;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "zz*p", kwlist, &address, &key, &start))
        return NULL;
    ManagerObject *self = (ManagerObject *)type->tp_alloc(type, 0);
    if (self != NULL && (self->lock = PyThread_allocate_lock()) == NULL) {
        Py_CLEAR(self);
        PyErr_NoMemory();
    }
    if (self == NULL) {
        PyBuffer_Release(&key);
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = start ? pshm_manager_start(&self->mgr, address, key.buf, (size_t)key.len)
               : pshm_manager_connect(&self->mgr, address, key.buf, (size_t)key.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&key);
    if (rc < 0) {
        Py_DECREF(self);
        return raise_pshm(rc, NULL);
    }
    return (PyObject *)self;
}

static void Manager_dealloc(ManagerObject *self)
{
    pshm_manager_disconnect(self->mgr); /* nobody else holds self now */
    if (self->lock != NULL)
        PyThread_free_lock(self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Manager_block(ManagerObject *self, PyObject *arg)
{
    Py_ssize_t size = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    if (size <= 0) {
        PyErr_SetString(PyExc_ValueError,
                        "'size' must be a positive number different from zero");
        return NULL;
    }
    pshm_block *b = NULL;
    int rc;
    MANAGER_CALL(self, rc, pshm_manager_block(self->mgr, (size_t)size, &b));
    return rc != 0 ? raise_manager(rc) : block_wrap(b, NULL, 0);
}

/* list(values, list_object): fill an unattached List (a ShareableList made
 * with __new__) with a list the server creates. */
static PyObject *Manager_list(ManagerObject *self, PyObject *args)
{
    PyObject *seq;
    ListObject *target;
    if (!PyArg_ParseTuple(args, "OO!", &seq, &List_Type, &target))
        return NULL;
    Py_ssize_t n;
    PyObject *keep;
    pshm_value *values = values_from(seq, &n, &keep);
    if (values == NULL)
        return NULL;
    pshm_list *l = NULL;
    int rc;
    MANAGER_CALL(self, rc, pshm_manager_list(self->mgr, values, (size_t)n, &l));
    PyMem_Free(values);
    Py_DECREF(keep);
    if (rc != 0)
        return raise_manager(rc);
    return list_adopt(target, l) < 0 ? NULL : (Py_INCREF(Py_None), Py_None);
}

static PyObject *Manager_names(ManagerObject *self, PyObject *unused)
{
    (void)unused;
    char **names;
    size_t count;
    int rc;
    MANAGER_CALL(self, rc, pshm_manager_names(self->mgr, &names, &count));
    if (rc != 0)
        return raise_manager(rc);
    PyObject *out = PyList_New((Py_ssize_t)count);
    for (size_t i = 0; out != NULL && i < count; i++) {
        PyObject *s = PyUnicode_DecodeFSDefault(names[i]);
        if (s == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, (Py_ssize_t)i, s);
    }
    pshm_names_free(names, count);
    return out;
}

static PyObject *Manager_release(ManagerObject *self, PyObject *arg)
{
    const char *name = PyUnicode_Check(arg) ? utf8_name(arg) : NULL;
    if (name == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "release() takes a block name (str)");
        return NULL;
    }
    int rc;
    MANAGER_CALL(self, rc, pshm_manager_release(self->mgr, name));
    if (rc == MANAGER_GONE)
        return raise_manager(rc);
    return rc < 0 ? raise_pshm(rc, name) : (Py_INCREF(Py_None), Py_None);
}

static PyObject *Manager_shutdown(ManagerObject *self, PyObject *unused)
{
    (void)unused;
    int rc;
    MANAGER_CALL(self, rc, manager_end(self, true));
    return rc != 0 ? raise_manager(rc) : (Py_INCREF(Py_None), Py_None);
}

static PyObject *Manager_disconnect(ManagerObject *self, PyObject *unused)
{
    (void)unused;
    int rc;
    MANAGER_CALL(self, rc, manager_end(self, false));
    (void)rc; /* disconnecting twice is fine */
    Py_RETURN_NONE;
}

/* The address or the key, read under the handle's lock. Taken with the
 * GIL held: no holder of the lock ever waits for the GIL. */
static PyObject *manager_text(ManagerObject *self, bool key)
{
    PyObject *out = NULL;
    PyThread_acquire_lock(self->lock, WAIT_LOCK);
    if (self->mgr != NULL && key) {
        size_t len;
        const void *k = pshm_manager_authkey(self->mgr, &len);
        out = PyBytes_FromStringAndSize(k, (Py_ssize_t)len);
    } else if (self->mgr != NULL) {
        out = PyUnicode_FromString(pshm_manager_address(self->mgr));
    } else {
        raise_manager(MANAGER_GONE);
    }
    PyThread_release_lock(self->lock);
    return out;
}

static PyObject *Manager_get_address(ManagerObject *self, void *closure)
{
    (void)closure;
    return manager_text(self, false);
}

static PyObject *Manager_get_authkey(ManagerObject *self, void *closure)
{
    (void)closure;
    return manager_text(self, true);
}

static PyMethodDef Manager_methods[] = {
    {"block", (PyCFunction)Manager_block, METH_O, NULL},
    {"list", (PyCFunction)Manager_list, METH_VARARGS, NULL},
    {"names", (PyCFunction)Manager_names, METH_NOARGS, NULL},
    {"release", (PyCFunction)Manager_release, METH_O, NULL},
    {"shutdown", (PyCFunction)Manager_shutdown, METH_NOARGS, NULL},
    {"disconnect", (PyCFunction)Manager_disconnect, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Manager_getset[] = {
    {"address", (getter)Manager_get_address, NULL, NULL, NULL},
    {"authkey", (getter)Manager_get_authkey, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL}};

/* ---- the module -------------------------------------------------------------- */

static PyObject *module_unlink(PyObject *module, PyObject *arg)
{
    (void)module;
    const char *name = PyUnicode_Check(arg) ? utf8_name(arg) : NULL;
    if (name == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "unlink() takes a block name (str)");
        return NULL;
    }
    int rc = pshm_unlink(name);
    return rc < 0 ? raise_pshm(rc, name) : (Py_INCREF(Py_None), Py_None);
}

static PyMethodDef module_methods[] = {
    {"unlink", module_unlink, METH_O, "Remove a block by name."}, {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_pshm",
    .m_doc = "libpshm for Python: see the pshm package.",
    .m_size = -1,
    .m_methods = module_methods,
};

// clang-format off: PyVarObject_HEAD_INIT brings its own comma
static PyTypeObject Block_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pshm._pshm.Block",
    .tp_basicsize = sizeof(BlockObject),
    .tp_dealloc = (destructor)Block_dealloc,
    .tp_as_buffer = &Block_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Block(name, create, size, track, readonly, populate): one libpshm handle.",
    .tp_methods = Block_methods,
    .tp_getset = Block_getset,
    .tp_new = Block_new,
};
// clang-format on

// clang-format off: PyVarObject_HEAD_INIT brings its own comma
static PyTypeObject List_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pshm._pshm.List",
    .tp_basicsize = sizeof(ListObject),
    .tp_dealloc = (destructor)List_dealloc,
    .tp_as_sequence = &List_as_sequence,
    .tp_as_mapping = &List_as_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A libpshm shareable list; the base of pshm.ShareableList.",
    .tp_traverse = (traverseproc)List_traverse,
    .tp_clear = (inquiry)List_clear,
    .tp_methods = List_methods,
    .tp_getset = List_getset,
    .tp_dictoffset = offsetof(ListObject, dict),
    .tp_new = PyType_GenericNew,
};
// clang-format on

// clang-format off: PyVarObject_HEAD_INIT brings its own comma
static PyTypeObject Manager_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pshm._pshm.Manager",
    .tp_basicsize = sizeof(ManagerObject),
    .tp_dealloc = (destructor)Manager_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Manager(address, authkey, start): a client of a pshm manager server.",
    .tp_methods = Manager_methods,
    .tp_getset = Manager_getset,
    .tp_new = Manager_new,
};
// clang-format on

static int add_type(PyObject *m, const char *name, PyTypeObject *type)
{
    if (PyType_Ready(type) < 0)
        return -1;
    Py_INCREF(type);
    if (PyModule_AddObject(m, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

static PyObject *import_attr(const char *module, const char *attr)
{
    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL)
        return NULL;
    PyObject *value = PyObject_GetAttrString(mod, attr);
    Py_DECREF(mod);
    return value;
}

PyMODINIT_FUNC PyInit__pshm(void)
{
    struct_error = import_attr("struct", "error");
    authentication_error = import_attr("multiprocessing", "AuthenticationError");
    if (struct_error == NULL || authentication_error == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddStringConstant(m, "__version__", PSHM_VERSION_TEXT) < 0 ||
        add_type(m, "Block", &Block_Type) < 0 || add_type(m, "List", &List_Type) < 0 ||
        add_type(m, "View", &View_Type) < 0 || add_type(m, "Manager", &Manager_Type) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
