//! Client authentication (SMTP AUTH PLAIN and LOGIN) against a file of password hashes.
//!
//! The file (`--auth-users FILE`) holds one `user:PHC-hash` per line, e.g.
//! `app1:$argon2id$v=19$m=19456,t=2,p=1$…$…`; blank lines and lines starting with `#` are
//! ignored. Only Argon2 hashes are accepted, never plain text; `postmark-relay hash-password USER`
//! makes a line. Verification recomputes the hash with the parameters stored in it and compares
//! in constant time (the `argon2` crate's `PasswordVerifier`). An unknown user is checked against
//! a dummy hash, so the answer takes as long as for a wrong password and does not tell which
//! users exist. At most [`MAX_PARALLEL_VERIFICATIONS`] hashes are computed at once on the
//! blocking pool, so a flood of AUTH attempts cannot take all memory (each Argon2 run uses its
//! `m` KiB).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

/// Hashes computed at the same time, at most.
pub const MAX_PARALLEL_VERIFICATIONS: usize = 2;
/// Longest accepted user name, in bytes.
pub const MAX_USER_LEN: usize = 256;
/// Longest accepted password, in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Largest Argon2 memory cost accepted from the file (KiB): 256 MiB per verification.
const MAX_M_COST: u32 = 256 * 1024;

/// Why the users file, a line of it, or a new user cannot be used. Never quotes a line: a
/// mistaken one may hold a password in plain text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    /// The file cannot be read.
    #[error("users file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A line is wrong.
    #[error("users file {}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and on which line.
        problem: LineError,
    },
    /// The file names nobody.
    #[error("users file {}: no user in it", .0.display())]
    NoUsers(PathBuf),
}

/// What is wrong with a line of the users file, a user name or a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// Not `user:hash`.
    #[error("line {0}: expected `user:$argon2id$…`")]
    Shape(usize),
    /// A bad user name on a line.
    #[error("line {0}: {1}")]
    User(usize, Box<LineError>),
    /// A bad hash on a line.
    #[error("line {line} (user {user}): {problem}")]
    Hash {
        /// Line number.
        line: usize,
        /// The user name (never the hash).
        user: String,
        /// What is wrong.
        problem: HashProblem,
    },
    /// A user listed twice.
    #[error("line {0}: user {1} is listed twice")]
    Duplicate(usize, String),
    /// An empty user name.
    #[error("the user name is empty")]
    EmptyUser,
    /// A user name over [`MAX_USER_LEN`] bytes.
    #[error("the user name is over {MAX_USER_LEN} bytes")]
    LongUser,
    /// `:`, blanks or control characters in a user name.
    #[error("the user name may not contain `:`, spaces or control characters")]
    BadUserChar,
    /// An empty password.
    #[error("the password is empty")]
    EmptyPassword,
    /// A password over [`MAX_PASSWORD_LEN`] bytes.
    #[error("the password is over {MAX_PASSWORD_LEN} bytes")]
    LongPassword,
    /// Argon2 failed.
    #[error("cannot hash the password: {0}")]
    Hashing(String),
}

/// The users allowed to send, loaded from the credentials file.
pub struct Users {
    path: PathBuf,
    table: RwLock<Arc<HashMap<String, PasswordHash>>>,
    dummy: PasswordHash,
    verifying: Arc<Semaphore>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users").field("path", &self.path).field("users", &self.len()).finish_non_exhaustive()
    }
}

impl Users {
    /// Loads the users file.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let table = read_users(path)?;
        let dummy: PasswordHash =
            Argon2::default().hash_password_with_salt(b"never a real password", b"postmark-relay-dummy-salt").map_err(
                |e| UsersError::Invalid { path: path.to_path_buf(), problem: LineError::Hashing(e.to_string()) },
            )?;
        Ok(Self {
            path: path.to_path_buf(),
            table: RwLock::new(Arc::new(table)),
            dummy,
            verifying: Arc::new(Semaphore::new(MAX_PARALLEL_VERIFICATIONS)),
        })
    }

    /// Re-reads the file; on any error the current users stay. Returns how many there are now.
    pub fn reload(&self) -> Result<usize, UsersError> {
        let table = read_users(&self.path)?;
        let n = table.len();
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        Ok(n)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.table.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the file lists nobody.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file (watched for changes).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `password` is `user`'s. Runs on the blocking pool, at most
    /// [`MAX_PARALLEL_VERIFICATIONS`] at a time; an unknown user costs the same as a known one.
    pub async fn verify(&self, user: &str, password: Vec<u8>) -> bool {
        if user.len() > MAX_USER_LEN || password.len() > MAX_PASSWORD_LEN {
            return false;
        }
        let table = Arc::clone(&self.table.read().unwrap_or_else(|e| e.into_inner()));
        let (hash, known) = match table.get(user) {
            Some(h) => (h.clone(), true),
            None => (self.dummy.clone(), false),
        };
        let Ok(_permit) = Arc::clone(&self.verifying).acquire_owned().await else {
            return false;
        };
        let matches = tokio::task::spawn_blocking(move || Argon2::default().verify_password(&password, &hash).is_ok())
            .await
            .unwrap_or(false);
        matches && known
    }
}

fn read_users(path: &Path) -> Result<HashMap<String, PasswordHash>, UsersError> {
    let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read { path: path.to_path_buf(), source })?;
    crate::secrets::warn_if_readable_by_others(path, "the users file");
    parse_users(&text).map_err(|problem| UsersError::Invalid { path: path.to_path_buf(), problem })
}

/// Parses the users file. Errors name the line but never quote it: a mistaken line may hold a
/// password in plain text.
pub fn parse_users(text: &str) -> Result<HashMap<String, PasswordHash>, LineError> {
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, phc)) = line.split_once(':') else {
            return Err(LineError::Shape(n));
        };
        check_user_name(user).map_err(|e| LineError::User(n, Box::new(e)))?;
        let hash = parse_hash(phc).map_err(|problem| LineError::Hash { line: n, user: user.to_owned(), problem })?;
        if users.insert(user.to_string(), hash).is_some() {
            return Err(LineError::Duplicate(n, user.to_owned()));
        }
    }
    Ok(users)
}

fn parse_hash(phc: &str) -> Result<PasswordHash, HashProblem> {
    if !phc.starts_with("$argon2") {
        return Err(HashProblem::NotArgon2);
    }
    let hash = PasswordHash::new(phc).map_err(|_| HashProblem::NotArgon2)?;
    if !matches!(hash.algorithm.as_str(), "argon2id" | "argon2i" | "argon2d") {
        return Err(HashProblem::NotArgon2);
    }
    let params = argon2::Params::try_from(&hash).map_err(|e| HashProblem::Parameters(e.to_string()))?;
    if params.m_cost() > MAX_M_COST {
        return Err(HashProblem::MemoryCost(params.m_cost()));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(HashProblem::NotArgon2);
    }
    Ok(hash)
}

/// What is wrong with the hash of a users-file line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashProblem {
    /// Not an Argon2 PHC string (plain text, perhaps).
    #[error("the password is not an Argon2 hash; make the line with `postmark-relay hash-password USER`")]
    NotArgon2,
    /// Parameters Argon2 refuses.
    #[error("bad Argon2 parameters: {0}")]
    Parameters(String),
    /// A memory cost over the limit.
    #[error("Argon2 memory cost m={0} is over the limit of {MAX_M_COST} KiB")]
    MemoryCost(u32),
}

/// A user name may not be empty, hold `:`, whitespace or control characters, or be over
/// [`MAX_USER_LEN`] bytes.
pub fn check_user_name(user: &str) -> Result<(), LineError> {
    if user.is_empty() {
        return Err(LineError::EmptyUser);
    }
    if user.len() > MAX_USER_LEN {
        return Err(LineError::LongUser);
    }
    if user.chars().any(|c| c == ':' || c.is_whitespace() || c.is_control()) {
        return Err(LineError::BadUserChar);
    }
    Ok(())
}

/// The users-file line for `user` with `password`: Argon2id with the crate's default parameters
/// (19 MiB, 2 passes) and a random salt.
pub fn hash_line(user: &str, password: &[u8]) -> Result<String, LineError> {
    check_user_name(user)?;
    if password.is_empty() {
        return Err(LineError::EmptyPassword);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(LineError::LongPassword);
    }
    let hash: PasswordHash =
        Argon2::default().hash_password(password).map_err(|e| LineError::Hashing(e.to_string()))?;
    Ok(format!("{user}:{hash}"))
}

/// Decodes an AUTH PLAIN response (`authzid NUL authcid NUL passwd`, base64). An authorization
/// identity other than the user itself is refused (no proxy authorization).
pub fn decode_plain(response: &str) -> Option<(String, Vec<u8>)> {
    let decoded = decode_base64(response)?;
    let mut fields = decoded.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    let user = std::str::from_utf8(user).ok()?.to_string();
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return None;
    }
    Some((user, password.to_vec()))
}

/// Decodes one base64 line of an AUTH exchange.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()
}

/// A users-file line with a cheap hash, for tests (the default parameters are slow in a debug
/// build).
#[cfg(test)]
pub(crate) fn cheap_line(user: &str, password: &str) -> String {
    let params = argon2::Params::new(64, 1, 1, None).unwrap();
    let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let hash: PasswordHash = argon.hash_password(password.as_bytes()).unwrap();
    format!("{user}:{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[tokio::test]
    async fn verifies_good_and_refuses_wrong_or_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, format!("# comment\n\n{}\n{}\n", cheap_line("app", "pw1"), cheap_line("b", "pw2")))
            .unwrap();
        let users = Users::load(&path).unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.verify("app", b"pw1".to_vec()).await);
        assert!(!users.verify("app", b"pw2".to_vec()).await);
        assert!(!users.verify("app", b"".to_vec()).await);
        assert!(!users.verify("nobody", b"pw1".to_vec()).await);
        assert!(!users.verify("APP", b"pw1".to_vec()).await, "user names are case-sensitive");
        assert!(!format!("{users:?}").contains("argon2"));

        // Reload: a broken file keeps the old table; a good one replaces it.
        std::fs::write(&path, "app:plaintext-password\n").unwrap();
        let e = users.reload().unwrap_err().to_string();
        assert!(!e.contains("plaintext-password"), "{e}");
        assert!(users.verify("app", b"pw1".to_vec()).await);
        std::fs::write(&path, cheap_line("app", "new")).unwrap();
        assert_eq!(users.reload().unwrap(), 1);
        assert!(users.verify("app", b"new".to_vec()).await);
        assert!(!users.verify("app", b"pw1".to_vec()).await);
        assert!(!users.verify("b", b"pw2".to_vec()).await);
    }

    #[test]
    fn plain_text_and_other_hashes_are_refused_without_quoting_them() {
        for (text, wanted) in [
            ("app:hunter2\n", "not an Argon2 hash"),
            ("app:$2b$12$abcdefghijklmnopqrstuu5Wc4J7vJ0bGf7Q0n3z1QmJ2Q4g5Fv2K\n", "not an Argon2 hash"),
            ("app:$argon2id$v=19$m=64,t=1,p=1$garbage\n", "not an Argon2 hash"),
            ("no colon here\n", "expected `user:"),
            (":$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$aGFzaA\n", "empty"),
            ("a b:$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$aGFzaA\n", "spaces"),
        ] {
            let e = parse_users(text).unwrap_err().to_string();
            assert!(e.contains(wanted), "{text:?}: {e}");
            assert!(e.contains("line 1"), "{e}");
            assert!(!e.contains("hunter2") && !e.contains("garbage"), "{e}");
        }
        let line = cheap_line("app", "x");
        let e = parse_users(&format!("{line}\n{line}\n")).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("twice"), "{e}");
        let huge = "app:$argon2id$v=19$m=4000000,t=1,p=1$c29tZXNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";
        assert!(parse_users(huge).unwrap_err().to_string().contains("memory cost"));
    }

    #[test]
    fn hash_line_makes_a_line_the_parser_accepts() {
        let line = hash_line("app", b"correct horse").unwrap();
        assert!(line.starts_with("app:$argon2id$v=19$m=19456,t=2,p=1$"), "{line}");
        let users = parse_users(&line).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &users["app"]).is_ok());
        assert_ne!(hash_line("app", b"correct horse").unwrap(), line, "a fresh salt every time");
        assert!(hash_line("a:b", b"x").is_err());
        assert!(hash_line("app", b"").is_err());
        assert!(hash_line("app", &[b'x'; MAX_PASSWORD_LEN + 1]).is_err());
    }

    #[test]
    fn plain_responses_decode() {
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(decode_plain(&b64(b"\0app\0pw")), Some(("app".into(), b"pw".to_vec())));
        assert_eq!(decode_plain(&b64(b"app\0app\0pw")), Some(("app".into(), b"pw".to_vec())));
        assert_eq!(decode_plain(&b64(b"other\0app\0pw")), None, "no proxy authorization");
        assert_eq!(decode_plain(&b64(b"app\0pw")), None);
        assert_eq!(decode_plain(&b64(b"\0app\0pw\0x")), None);
        assert_eq!(decode_plain("not base64!"), None);
    }
}
