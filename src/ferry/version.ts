/** The version of the `ferry` command (and of the project). */
export const FERRY_VERSION = '0.1.0';
