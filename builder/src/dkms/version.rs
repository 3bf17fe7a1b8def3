//! Kernel version comparison as DKMS does it for BUILD_EXCLUSIVE_KERNEL_MIN/_MAX.
//!
//! DKMS pads every run of digits to at least three digits and compares the
//! results as strings: `6.1.0-56-amd64` becomes `006.001.000-056-amd064`, so
//! `6.1.0-56` is newer than `6.1` and older than `6.10`. Runs of four or more
//! digits are left as they are (so `1000` sorts before `200`, as in DKMS).

/// The string DKMS compares for `version` (compare the results bytewise).
pub fn version_key(version: &str) -> String {
    let mut key = String::with_capacity(version.len() + 8);
    let mut digits = String::new();
    let flush = |digits: &mut String, key: &mut String| {
        for _ in digits.len()..3 {
            key.push('0');
        }
        key.push_str(digits);
        digits.clear();
    };
    for c in version.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                flush(&mut digits, &mut key);
            }
            key.push(c);
        }
    }
    if !digits.is_empty() {
        flush(&mut digits, &mut key);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::version_key as v;

    #[test]
    fn digit_runs_are_padded_to_three() {
        assert_eq!(v("6.1.0-56-amd64"), "006.001.000-056-amd064");
        assert_eq!(v("2.6.9-1cvs200409091247"), "002.006.009-001cvs200409091247");
        assert_eq!(v(""), "");
        assert_eq!(v("abc"), "abc");
    }

    #[test]
    fn compares_as_dkms_does() {
        assert!(v("6.1.0-56-amd64") > v("6.1"));
        assert!(v("6.1.0-56-amd64") < v("6.2"));
        assert!(v("6.1.0-56-amd64") < v("6.10"));
        assert!(v("6.12.57+deb13-amd64") > v("6.12"));
        assert!(v("5.4") < v("5.15"));
        assert!(v("6.1.0-56-amd64") >= v("6.1.0-56-amd64"));
    }
}
