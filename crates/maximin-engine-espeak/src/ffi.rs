//! The part of libespeak-ng's C API (`speak_lib.h`, 1.51) this engine uses,
//! declared by hand: a few functions and two structs.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_short, c_uint, c_void};

/// `AUDIO_OUTPUT_SYNCHRONOUS`: `espeak_Synth` returns when the text is
/// spoken, having called the callback with each buffer.
pub const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
/// `espeakINITIALIZE_DONT_EXIT`: report errors instead of exiting the process.
pub const INITIALIZE_DONT_EXIT: c_int = 0x8000;
pub const CHARS_UTF8: c_uint = 1;
/// `espeakENDPAUSE`: a sentence pause at the end of the text.
pub const ENDPAUSE: c_uint = 0x1000;
pub const PHONEMES_IPA: c_int = 0x02;
/// `POS_CHARACTER` for `espeak_Synth`'s position type.
pub const POS_CHARACTER: c_int = 1;

pub const RATE: c_int = 1;
pub const VOLUME: c_int = 2;
pub const PITCH: c_int = 3;
pub const RANGE: c_int = 4;

pub const EE_OK: c_int = 0;

#[repr(C)]
pub struct Event {
    pub kind: c_int,
    pub unique_identifier: c_uint,
    pub text_position: c_int,
    pub length: c_int,
    pub audio_position: c_int,
    pub sample: c_int,
    pub user_data: *mut c_void,
    /// A union of `int`, `const char*` and `char[8]`.
    pub id: u64,
}

#[repr(C)]
pub struct Voice {
    pub name: *const c_char,
    /// Pairs of (priority byte, NUL-terminated language), ended by a 0 byte.
    pub languages: *const c_char,
    pub identifier: *const c_char,
    /// 0 none, 1 male, 2 female.
    pub gender: u8,
    pub age: u8,
    pub variant: u8,
    pub xx1: u8,
    pub score: c_int,
    pub spare: *mut c_void,
}

pub type SynthCallback = unsafe extern "C" fn(*mut c_short, c_int, *mut Event) -> c_int;

#[link(name = "espeak-ng")]
extern "C" {
    pub fn espeak_Initialize(
        output: c_int,
        buflength: c_int,
        path: *const c_char,
        options: c_int,
    ) -> c_int;
    pub fn espeak_SetSynthCallback(cb: Option<SynthCallback>);
    pub fn espeak_Synth(
        text: *const c_void,
        size: usize,
        position: c_uint,
        position_type: c_int,
        end_position: c_uint,
        flags: c_uint,
        unique_identifier: *mut c_uint,
        user_data: *mut c_void,
    ) -> c_int;
    pub fn espeak_SetParameter(parameter: c_int, value: c_int, relative: c_int) -> c_int;
    pub fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    pub fn espeak_ListVoices(spec: *mut Voice) -> *mut *const Voice;
    pub fn espeak_TextToPhonemes(
        textptr: *mut *const c_void,
        textmode: c_int,
        phonememode: c_int,
    ) -> *const c_char;
}
