// SPDX-License-Identifier: GPL-2.0
/*
 * nondeterministic: a module whose every build differs, the fixture that shows
 * `hermod verify` finding and naming a non-reproducible section. The Makefile
 * writes random bytes into random_seed.h; they land in .hermod_random.
 */
#include <linux/init.h>
#include <linux/module.h>

#include "random_seed.h"

static const char hermod_random_seed[] __attribute__((used, section(".hermod_random"))) = RANDOM_SEED;

static int __init nondeterministic_init(void)
{
	pr_info("nondeterministic: seed %s\n", hermod_random_seed);
	return 0;
}

static void __exit nondeterministic_exit(void)
{
}

module_init(nondeterministic_init);
module_exit(nondeterministic_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Deliberately non-reproducible module: hermod verify's mismatch fixture");
MODULE_VERSION("0.1");
