// SPDX-License-Identifier: GPL-2.0
/* patched: builds only once patches/fix.patch is applied and PRE_BUILD made generated.h. */
#include <linux/module.h>
#include "generated.h"
#error "patches/fix.patch was not applied"
static int __init patched_init(void) { return PATCHED_VALUE; }
static void __exit patched_exit(void) { }
module_init(patched_init);
module_exit(patched_exit);
MODULE_LICENSE("GPL");
