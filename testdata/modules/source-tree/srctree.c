// SPDX-License-Identifier: GPL-2.0
/*
 * srctree: built in its own /usr/src tree, as west-chamber-dkms builds.
 * It takes a parameter so that modinfo has something to show and load tests
 * something to check.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static char *greeting = "srctree from hermod";
module_param(greeting, charp, 0444);
MODULE_PARM_DESC(greeting, "Message printed when the module is loaded");

static int __init srctree_init(void)
{
	pr_info("srctree: %s\n", greeting);
	return 0;
}

static void __exit srctree_exit(void)
{
	pr_info("srctree: goodbye\n");
}

module_init(srctree_init);
module_exit(srctree_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("hermod developers");
MODULE_DESCRIPTION("Minimal out-of-tree module used to test hermod end to end");
MODULE_VERSION("0.1");
