// posenc internals: POSENC_RESTRICT, a no-aliasing promise for the pointers of hot loops
// (every compiler posenc supports spells it __restrict).
#pragma once

#ifndef POSENC_RESTRICT
#if defined(__GNUC__) || defined(__clang__) || defined(_MSC_VER)
#define POSENC_RESTRICT __restrict
#else
#define POSENC_RESTRICT
#endif
#endif
