// SPDX-License-Identifier: GPL-2.0
/* alpha: a tiny module of a hermod dkms.conf fixture. */
#include <linux/module.h>
static int __init alpha_init(void) { return 0; }
static void __exit alpha_exit(void) { }
module_init(alpha_init);
module_exit(alpha_exit);
MODULE_LICENSE("GPL");
