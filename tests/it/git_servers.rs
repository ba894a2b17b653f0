//! Real git servers on loopback that demand authentication: Debian's git-http-backend behind
//! Apache over TLS with HTTP basic authentication, and Debian's OpenSSH server with a
//! throwaway host key. Each runs in the foreground of a child process, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http::free_port;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_port(port: u16, child: &mut Child, log: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the server exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the server never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A bare copy of the repository at `from` in `dir` (named `name.git`), readable by others
/// (Apache's CGI runs as www-data).
pub fn bare(from: &Path, dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let to = dir.join(format!("{name}.git"));
    run(Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(from)
        .arg(&to));
    run(Command::new("chmod").args(["-R", "a+rX"]).arg(dir));
    to
}

/// Apache serving the bare repositories in `repos` at `https://127.0.0.1:PORT/git/NAME.git`
/// to one user with one password.
pub struct HttpsGit {
    child: Child,
    /// The port.
    pub port: u16,
    /// The server's self-signed certificate (give it as SSL_CERT_FILE).
    pub cert: PathBuf,
}

impl HttpsGit {
    pub fn start(dir: &Path, repos: &Path, user: &str, password: &str) -> HttpsGit {
        let port = free_port();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null()));
        let users = dir.join("htpasswd");
        run(Command::new("htpasswd")
            .args(["-bcB"])
            .arg(&users)
            .args([user, password]));
        run(Command::new("chmod").args(["-R", "a+rX"]).arg(dir));
        let m = "/usr/lib/apache2/modules";
        let conf = format!(
            r#"ServerName 127.0.0.1
ServerRoot {dir}
Listen 127.0.0.1:{port}
PidFile {dir}/httpd.pid
ErrorLog {dir}/error.log
LogLevel warn
User www-data
Group www-data
LoadModule mpm_event_module {m}/mod_mpm_event.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule authz_user_module {m}/mod_authz_user.so
LoadModule authn_core_module {m}/mod_authn_core.so
LoadModule authn_file_module {m}/mod_authn_file.so
LoadModule auth_basic_module {m}/mod_auth_basic.so
LoadModule alias_module {m}/mod_alias.so
LoadModule cgid_module {m}/mod_cgid.so
LoadModule env_module {m}/mod_env.so
LoadModule ssl_module {m}/mod_ssl.so
LoadModule socache_shmcb_module {m}/mod_socache_shmcb.so
ScriptSock {dir}/cgid.sock
SSLSessionCache shmcb:{dir}/ssl_cache(512000)
SSLEngine on
SSLCertificateFile {cert}
SSLCertificateKeyFile {key}
SetEnv GIT_PROJECT_ROOT {repos}
SetEnv GIT_HTTP_EXPORT_ALL 1
SetEnv GIT_CONFIG_COUNT 1
SetEnv GIT_CONFIG_KEY_0 safe.directory
SetEnv GIT_CONFIG_VALUE_0 *
ScriptAlias /git/ /usr/lib/git-core/git-http-backend/
<Location /git/>
  AuthType Basic
  AuthName "private config"
  AuthUserFile {users}
  Require valid-user
</Location>
"#,
            dir = dir.display(),
            repos = repos.display(),
            cert = cert.display(),
            key = key.display(),
            users = users.display(),
        );
        let file = dir.join("httpd.conf");
        std::fs::write(&file, conf).unwrap();
        let log = dir.join("error.log");
        let mut child = Command::new("apache2")
            .arg("-f")
            .arg(&file)
            .arg("-DFOREGROUND")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("apache2 runs (Debian's apache2 package)");
        wait_port(port, &mut child, &log);
        HttpsGit { child, port, cert }
    }

    pub fn url(&self, name: &str) -> String {
        format!("https://127.0.0.1:{}/git/{name}.git", self.port)
    }
}

impl Drop for HttpsGit {
    fn drop(&mut self) {
        // Apache stops its children on SIGTERM.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// OpenSSH's server on a loopback port, letting in one key as the current user.
pub struct SshGit {
    child: Child,
    /// The port.
    pub port: u16,
    /// A known_hosts file listing the server's key.
    pub known_hosts: PathBuf,
    /// The private key it lets in.
    pub client_key: PathBuf,
}

fn keygen(path: &Path) -> String {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path));
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

impl SshGit {
    pub fn start(dir: &Path) -> SshGit {
        let port = free_port();
        let host_key = dir.join("host_ed25519");
        let host_pub = keygen(&host_key);
        let client_key = dir.join("client_ed25519");
        let client_pub = keygen(&client_key);
        std::fs::write(dir.join("authorized_keys"), &client_pub).unwrap();
        let mut fields = host_pub.split_whitespace();
        let (kind, blob) = (fields.next().unwrap(), fields.next().unwrap());
        let known_hosts = dir.join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {kind} {blob}\n")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let conf = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {dir}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {dir}/sshd.pid\n",
            hk = host_key.display(),
            dir = dir.display(),
        );
        let file = dir.join("sshd_config");
        std::fs::write(&file, conf).unwrap();
        let log = dir.join("sshd.log");
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("sshd runs (Debian's openssh-server package)");
        wait_port(port, &mut child, &log);
        SshGit {
            child,
            port,
            known_hosts,
            client_key,
        }
    }

    pub fn url(&self, path: &Path) -> String {
        let user =
            String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            user.trim(),
            self.port,
            path.display()
        )
    }
}

impl Drop for SshGit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
