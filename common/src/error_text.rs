//! An error as one line for logs and status fields: its message and every source after it
//! ("transport error: … : connection refused"), which `Display` alone leaves out.

/// `error` and its sources, joined by `": "`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("transport error")]
    struct Transport(#[source] std::io::Error);

    #[test]
    fn sources_follow_the_message() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        assert_eq!(error_chain(&Transport(refused)), "transport error: connection refused");
        assert_eq!(error_chain(&std::io::Error::other("plain")), "plain");
    }
}
