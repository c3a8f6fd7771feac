/* keep_mapped.c: a library that tools/test.sh preloads (LD_PRELOAD) into
 * every test program of its sanitizer pass, the samples included.
 *
 * LeakSanitizer inspects the heap when a process exits and names every
 * leak by the modules on its stack. The Vulkan loader unloads the driver
 * (lavapipe, with LLVM) and the validation layer when their last instance
 * goes, so their leaks would then show as "<unknown module>", which no
 * suppression in tests/lsan.supp can match. Opening both once more, never
 * to be closed, keeps them mapped and every frame named. RTLD_LOCAL, and
 * this library exports nothing: no Vulkan symbol is interposed (preloading
 * the layer itself would put its vkGetInstanceProcAddr in front of the
 * loader's). Test programs that link the harness do the same from
 * tests/harness.c, for runs outside test.sh. */
#include <dlfcn.h>
#include <stddef.h>

__attribute__((constructor)) static void keep_vulkan_libraries_mapped(void) {
    static const char *const libraries[] = {"libvulkan_lvp.so",
                                            "libVkLayer_khronos_validation.so"};
    for (size_t i = 0; i < sizeof libraries / sizeof *libraries; i++)
        dlopen(libraries[i], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE); /* absent: nothing to keep */
}
