// detail/function_id.hpp: how a function pointer crosses a process boundary.
//
// An address means nothing in another process: under spawn and forkserver
// the program is loaded again at another address (ASLR). A function crosses
// as (module, offset): the path of the loaded object that holds it ("" for
// the main program) and its offset from that object's load base. The
// receiver adds its own base.
//
// The receiver never jumps to an address a message chose: the offset must be
// the start of a function symbol in that module's ELF symbol table, checked
// before the pointer is returned, or the message is refused with
// SerializationError. The sender checks the same thing first, so a function
// that cannot be identified (a stripped binary) fails where it is sent, with
// a message that says why.
#pragma once

#include "mproc/detail/buffer.hpp"

namespace mproc::detail {

using AnyFunction = void (*)();

void encode_function(Writer& w, AnyFunction f);
AnyFunction decode_function(Reader& r);

}  // namespace mproc::detail
