//! Running the guest: the [`Machine`]'s qemu (`qemu-system-x86_64`,
//! `qemu-system-aarch64 -machine virt -cpu max,…`) with software emulation
//! (TCG, so no /dev/kvm is needed and the host kernel is never touched), no display,
//! the serial console on a pipe, and a wall-clock limit after which the
//! machine is killed. `-no-reboot` with `panic=-1` turns a kernel panic into
//! qemu exiting, so a crashing module ends the run at once.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::BootCheckError;
use super::Machine;

/// What the serial console showed, and how the machine ended.
#[derive(Debug, Clone)]
pub struct Run {
    pub console: String,
    pub seconds: f64,
    /// Killed at the wall-clock limit.
    pub timed_out: bool,
    /// qemu's own complaints (stderr), if any.
    pub stderr: String,
}

/// The qemu arguments for booting `kernel` with `initramfs` on `machine`.
pub fn arguments(machine: Machine, kernel: &Path, initramfs: &Path, memory: &str) -> Vec<String> {
    let mut args: Vec<String> = machine.board_arguments().iter().map(|s| s.to_string()).collect();
    args.extend(
        [
            "-accel",
            "tcg",
            "-m",
            memory,
            "-smp",
            "1",
            "-nographic",
            "-nodefaults",
            "-no-user-config",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.push(kernel.display().to_string());
    args.push("-initrd".into());
    args.push(initramfs.display().to_string());
    args.push("-append".into());
    // loglevel=1: only emergencies on the console, so the init script's
    // marker lines are not interleaved with kernel messages (it reads the
    // log itself with dmesg).
    args.push(format!("console={} loglevel=1 panic=-1 rdinit=/init", machine.console()));
    args
}

/// Boot `machine` and wait for it to power off, at most `timeout`.
pub fn run(
    machine: Machine,
    kernel: &Path,
    initramfs: &Path,
    memory: &str,
    timeout: Duration,
) -> Result<Run, BootCheckError> {
    let started = Instant::now();
    let qemu = machine.qemu();
    let mut child = Command::new(qemu)
        .args(arguments(machine, kernel, initramfs, memory))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| BootCheckError::Qemu(format!("cannot run {qemu} (install {}): {e}", machine.qemu_package())))?;
    let console = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let readers: Vec<_> = [
        (Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>, console.clone()),
        (Box::new(child.stderr.take().expect("piped")), stderr.clone()),
    ]
    .into_iter()
    .map(|(mut pipe, sink)| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut sink) = sink.lock() {
                    sink.extend_from_slice(&buf[..n]);
                }
            }
        })
    })
    .collect();
    let mut timed_out = false;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() >= timeout => {
                timed_out = true;
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                // Not a guest left running behind an error.
                let _ = child.kill();
                let _ = child.wait();
                return Err(BootCheckError::Qemu(format!("waiting for {qemu}: {e}")));
            }
        }
    }
    for reader in readers {
        let _ = reader.join();
    }
    let text = |sink: &Arc<Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&sink.lock().map(|s| s.clone()).unwrap_or_default()).into_owned()
    };
    Ok(Run { console: text(&console), seconds: started.elapsed().as_secs_f64(), timed_out, stderr: text(&stderr) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_emulation_serial_console_and_no_reboot() {
        let args = arguments(Machine::Amd64, Path::new("/k/vmlinuz"), Path::new("/k/initrd"), "512M").join(" ");
        for wanted in [
            "-accel tcg",
            "-m 512M",
            "-nographic",
            "-serial stdio",
            "-no-reboot",
            "-kernel /k/vmlinuz",
            "-initrd /k/initrd",
            "console=ttyS0",
            "panic=-1",
        ] {
            assert!(args.contains(wanted), "{wanted} not in {args}");
        }
        assert!(!args.contains("kvm"), "{args}");
        assert!(!args.contains("-machine"), "the PC is qemu-system-x86_64's default: {args}");
    }

    #[test]
    fn arm64_boots_the_virt_board_with_its_pl011_console() {
        let args = arguments(Machine::Arm64, Path::new("/k/vmlinuz"), Path::new("/k/initrd"), "512M").join(" ");
        assert!(args.starts_with("-machine virt -cpu max,pauth-impdef=on -accel tcg "), "{args}");
        for wanted in ["-serial stdio", "-no-reboot", "-kernel /k/vmlinuz", "console=ttyAMA0 ", "panic=-1"] {
            assert!(args.contains(wanted), "{wanted} not in {args}");
        }
        assert!(!args.contains("ttyS0"), "{args}");
    }
}
