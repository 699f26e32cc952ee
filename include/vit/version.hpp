// Library version, kept in step with CMakeLists.txt's project(VERSION).
#pragma once

#define VIT_VERSION_MAJOR 0
#define VIT_VERSION_MINOR 1
#define VIT_VERSION_PATCH 0
#define VIT_VERSION_STRING "0.1.0"
