// SPDX-License-Identifier: GPL-2.0
/*
 * panics: crashes the kernel on load, on purpose. A fixture for hermod's load
 * test under qemu (builder/tests/load_test.rs); never load it on a real machine.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

static int __init panics_init(void)
{
	panic("panics: crashing on purpose (hermod load-test fixture)");
	return 0;
}

module_init(panics_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Panics the kernel on load: a fixture for hermod's load test under qemu");
MODULE_VERSION("0.1");
