// SPDX-License-Identifier: GPL-2.0
/* beta: a tiny module of a hermod dkms.conf fixture. */
#include <linux/module.h>
static int __init beta_init(void) { return 0; }
static void __exit beta_exit(void) { }
module_init(beta_init);
module_exit(beta_exit);
MODULE_LICENSE("GPL");
