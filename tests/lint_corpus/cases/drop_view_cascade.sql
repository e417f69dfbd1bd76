-- CASCADE drops whatever depends on the view too.
DROP VIEW order_notes CASCADE;
