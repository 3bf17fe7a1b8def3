// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>
/* Deliberately broken: calls a function that does not exist. */
static int __init broken_init(void) { return this_function_does_not_exist(42); }
module_init(broken_init);
MODULE_LICENSE("GPL");
