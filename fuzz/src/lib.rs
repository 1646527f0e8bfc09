//! What the fuzz targets that drive an HTTP server over an in-memory connection
//! (`edge_request`, `inspector_request`) assert about whatever came back.

/// Panics (a libFuzzer finding) unless `out` is empty (the server closed without
/// answering, which is allowed for garbage) or HTTP/1.x responses none of which
/// is a 500: visitor input must never be able to make the server fail.
pub fn assert_http_without_500(out: &[u8]) {
    if out.is_empty() {
        return;
    }
    assert!(
        out.starts_with(b"HTTP/1.1 ") || out.starts_with(b"HTTP/1.0 "),
        "not an HTTP response: {:?}",
        String::from_utf8_lossy(&out[..out.len().min(200)])
    );
    // Every response on the connection (keep-alive may carry several): the text
    // at the start of a line. A body line starting with it would be a false alarm,
    // which is a finding to look at, never a 500 missed.
    let text = String::from_utf8_lossy(out);
    for (i, _) in text.match_indices("HTTP/1.1 500") {
        assert!(
            !(i == 0 || text[..i].ends_with('\n')),
            "a 500 for input from outside: {:?}",
            &text[..text.len().min(600)]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::assert_http_without_500;

    #[test]
    fn answers_and_silence_pass() {
        assert_http_without_500(b"");
        assert_http_without_500(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        // "HTTP/1.1 500" in the middle of a line is not a status line.
        assert_http_without_500(b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\nx HTTP/1.1 500");
    }

    #[test]
    #[should_panic(expected = "a 500")]
    fn a_500_after_another_response_fails() {
        assert_http_without_500(
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\nHTTP/1.1 500 Internal\r\n\r\n",
        );
    }

    #[test]
    #[should_panic(expected = "not an HTTP response")]
    fn bytes_that_are_not_http_fail() {
        assert_http_without_500(b"garbage");
    }
}
