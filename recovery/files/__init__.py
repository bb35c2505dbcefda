"""Reading and checking the data files clinicians review: plan templates and clinic overrides, worked-case
files. Errors name the file and line."""
