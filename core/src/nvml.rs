//! The NVML source, through `nvml-wrapper`: dlopened at run time, initialised, queried and shut
//! down inside one call; only plain data (`Gpu`) leaves it.
