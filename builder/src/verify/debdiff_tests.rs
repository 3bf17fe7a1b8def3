use super::*;
use crate::verify::elfdiff::tests::elf;

/// One tar entry: (path, mode, uid, mtime, content).
type Entry<'a> = (&'a str, u32, u64, u64, &'a [u8]);

fn tar_xz(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, uid, mtime, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_mode(*mode);
        h.set_uid(*uid);
        h.set_gid(0);
        h.set_mtime(*mtime);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut xz = Vec::new();
    liblzma::read::XzEncoder::new(&tar[..], 6).read_to_end(&mut xz).unwrap();
    xz
}

fn deb_of(control: &[u8], data: &[u8]) -> Vec<u8> {
    let mut ar = ar::Builder::new(Vec::new());
    for (name, bytes) in [("debian-binary", &b"2.0\n"[..]), ("control.tar.xz", control), ("data.tar.xz", data)] {
        let mut h = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
        h.set_mode(0o100644);
        ar.append(&h, bytes).unwrap();
    }
    ar.into_inner().unwrap()
}

fn deb(control: &str, data: &[Entry]) -> Vec<u8> {
    deb_of(&tar_xz(&[("./control", 0o644, 0, 1, control.as_bytes())]), &tar_xz(data))
}

const KO: &str = "./lib/modules/6.1.0-56-amd64/updates/dkms/m.ko";

#[test]
fn equal_packages_have_no_differences() {
    let ko = elf(&[(".text", 1, b"\xc3")]);
    let a = deb("Package: m\n", &[(KO, 0o644, 0, 1, &ko)]);
    assert!(diff(&read(&a), &read(&a)).is_empty());
}

#[test]
fn a_module_names_its_differing_section() {
    let ka = elf(&[(".text", 1, b"\xc3"), (".hermod_random", 1, b"aaaa")]);
    let kb = elf(&[(".text", 1, b"\xc3"), (".hermod_random", 1, b"bbbb")]);
    let a = deb("Package: m\n", &[(KO, 0o644, 0, 1, &ka)]);
    let b = deb("Package: m\n", &[(KO, 0o644, 0, 1, &kb)]);
    let d = diff(&read(&a), &read(&b));
    assert_eq!(d.len(), 1, "only the module differs, not the xz stream on its own: {d:?}");
    assert_eq!(d[0].member, "data.tar:lib/modules/6.1.0-56-amd64/updates/dkms/m.ko");
    assert_eq!(d[0].aspects[0].what, "content");
    let names: Vec<&str> = d[0].elf_sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [".hermod_random"]);
}

#[test]
fn mode_owner_mtime_presence_and_control_are_named() {
    let a = deb(
        "Package: m\nVersion: 1\n",
        &[("./usr/share/doc/m/copyright", 0o644, 0, 1, b"c"), ("./a", 0o644, 0, 1, b"")],
    );
    let b = deb(
        "Package: m\nVersion: 2\n",
        &[("./usr/share/doc/m/copyright", 0o600, 7, 2, b"c"), ("./b", 0o644, 0, 1, b"")],
    );
    let d = diff(&read(&a), &read(&b));
    let got: Vec<(String, Vec<String>)> =
        d.iter().map(|d| (d.member.clone(), d.aspects.iter().map(|a| a.what.clone()).collect())).collect();
    let want = |m: &str, w: &[&str]| (m.to_owned(), w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        got,
        [
            want("control.tar:control", &["content"]),
            want("data.tar:a", &["presence"]),
            want("data.tar:b", &["presence"]),
            want("data.tar:usr/share/doc/m/copyright", &["mode", "owner", "mtime"]),
        ]
    );
    let mode = &d[3].aspects[0];
    assert_eq!((mode.first.as_str(), mode.second.as_str()), ("0644", "0600"));
}

#[test]
fn a_damaged_member_is_a_difference_not_an_error() {
    let good = deb("Package: m\n", &[("./a", 0o644, 0, 1, b"x")]);
    let control = tar_xz(&[("./control", 0o644, 0, 1, b"Package: m\n")]);
    let mut data = tar_xz(&[("./a", 0o644, 0, 1, b"x")]);
    let middle = data.len() / 2;
    data[middle] ^= 0xff;
    let bad = deb_of(&control, &data);
    let d = diff(&read(&good), &read(&bad));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].member, "data.tar.xz");
    assert!(d[0].aspects.iter().any(|a| a.what == "readable" && a.second.contains("cannot decompress")), "{d:?}");

    let not_deb = diff(&read(&good), &read(b"hello"));
    assert_eq!(not_deb[0].member, "(the .deb file)");
}
