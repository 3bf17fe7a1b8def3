//! The guest's machine, one per Debian architecture whose kernels the load
//! test boots: the qemu that emulates it and its arguments, the serial
//! console's device, the ELF machine of its modules and programs, and what
//! its kernel image (`/boot/vmlinuz-<KREL>` in either) looks like.
//!
//! It is decided once per test, from the architecture of the platform (the
//! recipe) whose archive offers the kernel ([`Machine::for_architecture`]);
//! everything architecture-specific is asked of it.

use super::BootCheckError;

/// A machine qemu emulates (software emulation, TCG) for a Debian architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// `amd64`: qemu's default PC, the 8250 serial port `ttyS0`.
    Amd64,
    /// `arm64`: qemu's `virt` board with its PL011 UART `ttyAMA0`.
    Arm64,
}

impl Machine {
    /// Every machine, in the order messages list them.
    pub const ALL: [Machine; 2] = [Machine::Amd64, Machine::Arm64];

    /// The machine of a Debian architecture (a recipe's `architecture`).
    pub fn for_architecture(architecture: &str) -> Result<Machine, BootCheckError> {
        Machine::ALL
            .into_iter()
            .find(|m| m.architecture() == architecture)
            .ok_or_else(|| BootCheckError::Architecture(architecture.to_owned()))
    }

    /// Its Debian architecture.
    pub fn architecture(self) -> &'static str {
        match self {
            Machine::Amd64 => "amd64",
            Machine::Arm64 => "arm64",
        }
    }

    /// The emulator (from PATH).
    pub fn qemu(self) -> &'static str {
        match self {
            Machine::Amd64 => "qemu-system-x86_64",
            Machine::Arm64 => "qemu-system-aarch64",
        }
    }

    /// The Debian package that installs [`Machine::qemu`].
    pub fn qemu_package(self) -> &'static str {
        match self {
            Machine::Amd64 => "qemu-system-x86",
            Machine::Arm64 => "qemu-system-arm",
        }
    }

    /// qemu's arguments that choose the board and the CPU. The PC is qemu's
    /// default; arm64 has no default board: `virt` (qemu writes its device
    /// tree, which Debian's arm64 kernel reads) with the `max` CPU: every
    /// feature TCG emulates, so a module's pointer-authentication and BTI
    /// instructions run as on recent hardware, not as the NOPs of an
    /// ARMv8.0 CPU. `pauth-impdef=on` signs pointers with qemu's own cheap
    /// algorithm instead of emulating QARMA (the guest cannot tell but by
    /// the signatures' values): it halves the boot here (3.2 s, not 6.6–8.9 s).
    pub fn board_arguments(self) -> &'static [&'static str] {
        match self {
            Machine::Amd64 => &[],
            Machine::Arm64 => &["-machine", "virt", "-cpu", "max,pauth-impdef=on"],
        }
    }

    /// The serial console's device in the guest (the kernel's `console=`).
    pub fn console(self) -> &'static str {
        match self {
            Machine::Amd64 => "ttyS0",
            Machine::Arm64 => "ttyAMA0",
        }
    }

    /// The ELF machine of its kernel's modules and of its programs.
    pub fn elf(self) -> object::Architecture {
        match self {
            Machine::Amd64 => object::Architecture::X86_64,
            Machine::Arm64 => object::Architecture::Aarch64,
        }
    }

    /// `Ok` when the start of a kernel image (`vmlinuz`) is a boot image of
    /// this machine, else what it is not: an x86 bzImage has the setup
    /// header `HdrS` at 0x202; an arm64 `Image` has the magic `ARM\x64` at
    /// 56 (Debian ships it uncompressed), and qemu also boots one
    /// gzip-compressed or in an EFI zboot container (`zimg` at 4).
    pub fn check_image(self, head: &[u8]) -> Result<(), String> {
        let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
        let ok = match self {
            Machine::Amd64 => at(0x202, b"HdrS"),
            Machine::Arm64 => at(56, b"ARM\x64") || at(0, b"\x1f\x8b") || (at(0, b"MZ") && at(4, b"zimg")),
        };
        if ok {
            Ok(())
        } else {
            let what = match self {
                Machine::Amd64 => "an x86 bzImage",
                Machine::Arm64 => "an arm64 Image",
            };
            Err(format!("the kernel image is not {what}: it cannot boot on qemu's {} machine", self.architecture()))
        }
    }
}

/// The ELF machine of an ELF file.
pub fn elf_architecture(elf: &[u8]) -> Result<object::Architecture, String> {
    use object::Object;
    Ok(object::File::parse(elf).map_err(|e| format!("not an ELF file: {e}"))?.architecture())
}

/// An ELF machine as users name it: the Debian architecture of hermod's
/// machines, a lower-case name of the others.
pub fn architecture_name(arch: object::Architecture) -> String {
    match Machine::ALL.into_iter().find(|m| m.elf() == arch) {
        Some(machine) => machine.architecture().to_owned(),
        None => match arch {
            object::Architecture::I386 => "i386".to_owned(),
            object::Architecture::Arm => "arm (32-bit)".to_owned(),
            object::Architecture::PowerPc64 => "ppc64".to_owned(),
            object::Architecture::S390x => "s390x".to_owned(),
            object::Architecture::Riscv64 => "riscv64".to_owned(),
            other => format!("{other:?}").to_lowercase(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Code, HasExitCode};

    #[test]
    fn the_machine_comes_from_the_debian_architecture() {
        assert_eq!(Machine::for_architecture("amd64").unwrap(), Machine::Amd64);
        let arm64 = Machine::for_architecture("arm64").unwrap();
        assert_eq!(
            (arm64.qemu(), arm64.console(), arm64.elf()),
            ("qemu-system-aarch64", "ttyAMA0", object::Architecture::Aarch64)
        );
        assert_eq!(arm64.board_arguments(), ["-machine", "virt", "-cpu", "max,pauth-impdef=on"]);
        assert!(Machine::Amd64.board_arguments().is_empty(), "the PC is qemu-system-x86_64's default");
        let err = Machine::for_architecture("riscv64").unwrap_err();
        assert!(err.to_string().contains("riscv64") && err.to_string().contains("amd64 and arm64"), "{err}");
        assert_eq!(err.exit_code(), Code::Usage);
    }

    #[test]
    fn a_kernel_image_of_another_machine_is_told() {
        let mut bzimage = vec![0u8; 0x300];
        bzimage[0x202..0x206].copy_from_slice(b"HdrS");
        let mut image = vec![0u8; 0x300];
        image[56..60].copy_from_slice(b"ARM\x64");
        assert!(Machine::Amd64.check_image(&bzimage).is_ok());
        assert!(Machine::Arm64.check_image(&image).is_ok());
        assert!(Machine::Arm64.check_image(b"\x1f\x8b\x08\0").is_ok(), "Image.gz");
        let err = Machine::Arm64.check_image(&bzimage).unwrap_err();
        assert!(err.contains("not an arm64 Image"), "{err}");
        assert!(Machine::Amd64.check_image(&image).unwrap_err().contains("not an x86 bzImage"));
        assert!(Machine::Amd64.check_image(b"short").is_err());
    }

    #[test]
    fn elf_machines_are_named() {
        let mut elf = crate::load_test::modinfo::tests::fake_module(&["name=x"]);
        assert_eq!(elf_architecture(&elf), Ok(Machine::Amd64.elf()));
        elf[0x12] = 183; // EM_AARCH64
        assert_eq!(elf_architecture(&elf), Ok(Machine::Arm64.elf()));
        assert_eq!(architecture_name(elf_architecture(&elf).unwrap()), "arm64");
        elf[0x12] = 243; // EM_RISCV
        assert_eq!(architecture_name(elf_architecture(&elf).unwrap()), "riscv64");
        assert!(elf_architecture(b"junk").unwrap_err().contains("not an ELF"));
    }
}
