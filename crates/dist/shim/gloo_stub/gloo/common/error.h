// Declaration stub (see README.md): ProcessGroupGloo.hpp includes this header.
#pragma once
