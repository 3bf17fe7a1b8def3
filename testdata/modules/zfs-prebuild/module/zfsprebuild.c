// SPDX-License-Identifier: GPL-2.0
/*
 * zfsprebuild: built by the Makefile its PRE_BUILD (configure) wrote.
 * It takes a parameter so that modinfo has something to show and load tests
 * something to check.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

#include "configure.h"

static char *greeting = "zfsprebuild from hermod";
module_param(greeting, charp, 0444);
MODULE_PARM_DESC(greeting, "Message printed when the module is loaded");

static int __init zfsprebuild_init(void)
{
	pr_info("zfsprebuild: %s\n", greeting);
	return 0;
}

static void __exit zfsprebuild_exit(void)
{
	pr_info("zfsprebuild: goodbye\n");
}

module_init(zfsprebuild_init);
module_exit(zfsprebuild_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("hermod developers");
MODULE_INFO(configure_linux, CONFIGURE_LINUX);
MODULE_INFO(configure_linux_obj, CONFIGURE_LINUX_OBJ);
MODULE_DESCRIPTION("Minimal out-of-tree module used to test hermod end to end");
MODULE_VERSION("0.1");
