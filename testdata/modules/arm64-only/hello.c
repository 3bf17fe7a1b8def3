// SPDX-License-Identifier: GPL-2.0
/*
 * hello: the smallest useful out-of-tree module, hermod's own end-to-end fixture.
 * It takes a parameter so that modinfo has something to show and load tests
 * something to check.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static char *greeting = "hello from hermod";
module_param(greeting, charp, 0444);
MODULE_PARM_DESC(greeting, "Message printed when the module is loaded");

static int __init hello_init(void)
{
	pr_info("hello: %s\n", greeting);
	return 0;
}

static void __exit hello_exit(void)
{
	pr_info("hello: goodbye\n");
}

module_init(hello_init);
module_exit(hello_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("hermod developers");
MODULE_DESCRIPTION("Minimal out-of-tree module used to test hermod end to end");
MODULE_VERSION("0.1");
