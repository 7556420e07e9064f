//! The emulated NVML answers to the real one's name: its SONAME is `libnvidia-ml.so.1`.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnvidia-ml.so.1");
}
