VALUE = "from external_package_dirs"
