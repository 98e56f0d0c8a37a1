//! The process's allocator: mimalloc, entered through its plain `mi_malloc` wherever that
//! already gives the alignment asked for.
//!
//! The `mimalloc` crate's allocator sends every allocation through `mi_malloc_aligned`, whose
//! checks (a power of two, whether the next free block happens to be aligned) run on every call:
//! under callgrind they were about a third of the allocator's instructions on the CPU path of
//! `benches/cpu.rs`, which allocates some 70 times per row change (issue 13). Every block
//! mimalloc hands out is aligned to at least the machine word (its size classes are whole words
//! and a page's blocks sit at whole multiples of their size from a word-aligned start), so a
//! layout asking no more than that needs no aligned entry; the rest (`u128` and the like) still
//! takes it. The plain entry is also taken only for a size that is a multiple of the alignment,
//! as every Rust type's is: a mimalloc built with its debugging guard pages in "precise" mode
//! (not how rowcast builds it) places an object right before its guard page, at a multiple of its
//! size but not necessarily of a word.

// The crate denies unsafe code; this module is its one exception, for the allocator's entry
// points (an FFI call each).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The largest alignment every mimalloc block has.
const WORD: usize = std::mem::align_of::<usize>();

/// mimalloc as the global allocator (`#[global_allocator]` in `main.rs` and the benches).
pub struct Mimalloc;

/// Whether mimalloc's plain entry points give `align` for `size` bytes (see the module's
/// documentation).
#[inline]
fn plain(size: usize, align: usize) -> bool {
    align <= WORD && size.is_multiple_of(align)
}

// SAFETY: every entry point returns a block of at least `layout.size()` bytes aligned to
// `layout.align()` (the plain ones only where [`plain`] says they do), or null; blocks are freed
// and resized only by mimalloc, and `realloc` keeps the block's alignment (the `GlobalAlloc`
// contract gives it the layout the block was allocated with).
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(layout.size(), layout.align()) {
            mi::mi_malloc(layout.size()).cast()
        } else {
            mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(layout.size(), layout.align()) {
            mi::mi_zalloc(layout.size()).cast()
        } else {
            mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain(new_size, layout.align()) {
            mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate denies `unsafe` (Cargo.toml); this module is the one place allowed it.
    #[test]
    fn no_other_module_allows_unsafe_code() {
        fn visit(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("source directory") {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    visit(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("source file");
                    if text.contains(concat!("allow(", "unsafe_code)")) {
                        found.push(path.display().to_string());
                    }
                }
            }
        }
        let mut found = Vec::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in ["src", "benches", "tests"] {
            visit(&root.join(dir), &mut found);
        }
        let expected = root.join("src/util/alloc.rs").display().to_string();
        assert_eq!(found, [expected]);
    }

    /// Blocks of every size up to 64 bytes and some up to 70,000, of alignments 1 to 64 and
    /// 4 KiB, are aligned as asked, keep their bytes when grown and shrunk, and come back zeroed
    /// when asked for zeroed.
    #[test]
    fn blocks_are_aligned_as_asked_and_keep_their_bytes() {
        let a = Mimalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in (1..=64).chain([100, 1000, 4095, 4096, 70_000]) {
                let layout = Layout::from_size_align(size, align).expect("valid layout");
                unsafe {
                    let zeroed = a.alloc_zeroed(layout);
                    assert!(!zeroed.is_null());
                    assert_eq!(zeroed as usize % align, 0, "zeroed {size}/{align}");
                    assert!(std::slice::from_raw_parts(zeroed, size)
                        .iter()
                        .all(|&b| b == 0));
                    a.dealloc(zeroed, layout);
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "{size}/{align}");
                    for i in 0..size {
                        *p.add(i) = i as u8;
                    }
                    let grown = a.realloc(p, layout, size * 3);
                    assert_eq!(grown as usize % align, 0, "grown {size}/{align}");
                    for i in 0..size {
                        assert_eq!(*grown.add(i), i as u8);
                    }
                    let grown_layout =
                        Layout::from_size_align(size * 3, align).expect("valid layout");
                    let shrunk = a.realloc(grown, grown_layout, size.div_ceil(2));
                    assert_eq!(shrunk as usize % align, 0, "shrunk {size}/{align}");
                    for i in 0..size.div_ceil(2) {
                        assert_eq!(*shrunk.add(i), i as u8);
                    }
                    a.dealloc(
                        shrunk,
                        Layout::from_size_align(size.div_ceil(2), align).expect("valid layout"),
                    );
                }
            }
        }
    }
}
