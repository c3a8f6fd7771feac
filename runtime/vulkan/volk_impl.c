/* volk_impl.c: volk's implementation, compiled once into the library with
 * hidden visibility so its loader state never clashes with a host engine's. */
#include <volk.c>
