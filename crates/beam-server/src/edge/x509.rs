//! Just enough DER to read a certificate's `notAfter` (RFC 5280 §4.1.2.5), which
//! decides when an ACME certificate is renewed. A full X.509 parser would cost a
//! dependency tree for one field.

/// One DER tag-length-value: `(tag, content, rest)`.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `notAfter` of a DER certificate as unix milliseconds.
pub fn not_after_ms(der: &[u8]) -> Option<i64> {
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut rest = tbs;
    // Optional explicit version [0].
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    let (0x02, _, rest) = tlv(rest)? else {
        return None;
    }; // serialNumber
    let (0x30, _, rest) = tlv(rest)? else {
        return None;
    }; // signature
    let (0x30, _, rest) = tlv(rest)? else {
        return None;
    }; // issuer
    let (0x30, validity, _) = tlv(rest)? else {
        return None;
    };
    let (_, _, after) = tlv(validity)?; // notBefore
    let (tag, time, _) = tlv(after)?;
    let s = std::str::from_utf8(time).ok()?;
    let (year, rest) = match tag {
        // UTCTime: YYMMDDHHMMSSZ, 50-99 are 19xx.
        0x17 => {
            let yy: i64 = s.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
        }
        // GeneralizedTime: YYYYMMDDHHMMSSZ.
        0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    if rest.len() != 11 || !rest.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| rest.get(r)?.parse::<i64>().ok();
    let (month, day) = (num(0..2)?, num(2..4)?);
    let (h, m, sec) = (num(4..6)?, num(6..8)?, num(8..10)?);
    let days = beam_proto::time::days_from_civil(year, month, day)?;
    Some((days * 86_400 + h * 3600 + m * 60 + sec) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_not_after_of_utc_and_generalized_times() {
        for (year, expect_ms) in [(2031, 1_931_731_200_000i64), (2051, 2_562_883_200_000)] {
            let mut p = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap();
            p.not_after = rcgen::date_time_ymd(year, 3, 20);
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = p.self_signed(&key).unwrap();
            assert_eq!(not_after_ms(cert.der()), Some(expect_ms), "{year}");
        }
        assert_eq!(not_after_ms(b"\x30\x03\x02\x01"), None);
        assert_eq!(not_after_ms(b""), None);
    }
}
