// SPDX-License-Identifier: GPL-2.0
/* gamma: a tiny module of a hermod dkms.conf fixture. */
#include <linux/module.h>
static int __init gamma_init(void) { return 0; }
static void __exit gamma_exit(void) { }
module_init(gamma_init);
module_exit(gamma_exit);
MODULE_LICENSE("GPL");
