// SQLite 3 (Debian's libsqlite3-dev) for the control plane's store.
#ifndef PORTICO_CSQLITE_SHIM_H
#define PORTICO_CSQLITE_SHIM_H
#include <sqlite3.h>
// SQLITE_TRANSIENT is a macro Swift cannot import: a destructor value of -1.
static inline sqlite3_destructor_type portico_sqlite_transient(void) { return (sqlite3_destructor_type)-1; }
#endif
