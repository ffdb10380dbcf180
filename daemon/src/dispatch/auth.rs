//! The worker's boot token: 256 random bits, made fresh for every worker boot and handed to the worker over
//! a channel no job can read (its stdin). Every Dispatch call carries it as `authorization: Bearer <hex>`;
//! the worker compares in constant time and refuses any other call before looking at it. The token is
//! never printed: its `Debug` says only that it is one.

use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the worker token must be 64 hex digits")]
    Malformed,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Token([u8; 32]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    pub fn generate() -> Self {
        Self(rand::random())
    }

    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let bytes = hex::decode(text.trim()).map_err(|_| AuthError::Malformed)?;
        Ok(Self(bytes.try_into().map_err(|_| AuthError::Malformed)?))
    }

    /// The token as the worker reads it (64 hex digits); only for handing it over.
    pub fn expose_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether an `authorization` header value carries this token (constant time in the token).
    pub fn accepts(&self, header: &[u8]) -> bool {
        let Some(given) = header.strip_prefix(b"Bearer ") else { return false };
        let Ok(given) = hex::decode(given) else { return false };
        if given.len() != self.0.len() {
            return false;
        }
        let diff = given.iter().zip(self.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

/// The worker's check of every call.
pub fn require(token: Arc<Token>) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |req: Request<()>| {
        let ok = req.metadata().get("authorization").is_some_and(|v| token.accepts(v.as_bytes()));
        if ok { Ok(req) } else { Err(Status::unauthenticated("this call does not carry the worker's token")) }
    }
}

/// The daemon's side: adds the token to every call.
#[derive(Clone)]
pub struct Bearer(Arc<Token>);

impl Bearer {
    pub fn new(token: Arc<Token>) -> Self {
        Self(token)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let value = MetadataValue::try_from(format!("Bearer {}", self.0.expose_hex()))
            .map_err(|_| Status::internal("the worker token does not fit a header"))?;
        req.metadata_mut().insert("authorization", value);
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_itself_is_accepted_and_it_is_never_printed() {
        let t = Token::generate();
        let header = format!("Bearer {}", t.expose_hex());
        assert!(t.accepts(header.as_bytes()));
        assert!(!t.accepts(t.expose_hex().as_bytes()), "the scheme is required");
        assert!(!t.accepts(format!("Bearer {}", Token::generate().expose_hex()).as_bytes()));
        assert!(!t.accepts(b"Bearer 00"), "a short token");
        assert!(!t.accepts(b"Bearer not-hex"));
        assert_eq!(Token::parse(&t.expose_hex()).unwrap(), t);
        assert!(Token::parse("abc").is_err());
        assert!(!format!("{t:?}").contains(&t.expose_hex()[..8]));
        let check = require(Arc::new(t.clone()));
        let mut req = Request::new(());
        assert_eq!(check(Request::new(())).unwrap_err().code(), tonic::Code::Unauthenticated);
        req.metadata_mut().insert("authorization", header.parse().unwrap());
        assert!(check(req).is_ok());
    }
}
