/* The floor for any preload library: a shared object with one empty constructor.
 * Build: cc -O2 -shared -fPIC -o empty.so scripts/empty.c */
__attribute__((constructor)) static void empty_ctor(void) {}
