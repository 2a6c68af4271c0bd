/* The CPython extension module around the library: an empty module, so that the package build
 * (setup.py) makes and installs it as an ordinary extension, one per tzip_cpu_level. Python never
 * calls into it as a module: tzip/engine/library.py loads the file with ctypes and reads its
 * interface from tzip.h. Compiled only by the package build (TZIP_MODULE names the module). */
#ifdef TZIP_MODULE
#include <Python.h>

#define TZIP_STR2(x) #x
#define TZIP_STR(x) TZIP_STR2(x)
#define TZIP_CAT2(a, b) a##b
#define TZIP_CAT(a, b) TZIP_CAT2(a, b)

static struct PyModuleDef tzip_module = {
    PyModuleDef_HEAD_INIT, "tzip." TZIP_STR(TZIP_MODULE), "tzip's C library (loaded with ctypes)", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC TZIP_CAT(PyInit_, TZIP_MODULE)(void) { return PyModule_Create(&tzip_module); }
#endif
