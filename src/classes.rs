//! The 1,000 ImageNet class names, in index order, compiled into the binary.

const RAW: &str = include_str!("../weights/imagenet_classes.txt");

/// `(wnid, name)` of ImageNet class `index`, or None past the end.
pub fn imagenet(index: usize) -> Option<(&'static str, &'static str)> {
    RAW.lines().nth(index).and_then(|line| line.split_once('\t'))
}

/// A display name for class `index` of a model with `classes` outputs: the ImageNet name when
/// the model has 1,000 classes, else `class N`.
pub fn name(index: usize, classes: usize) -> String {
    match (classes, imagenet(index)) {
        (1000, Some((_, name))) => name.to_string(),
        _ => format!("class {index}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn there_are_a_thousand_named_classes() {
        assert_eq!(super::RAW.lines().count(), 1000);
        assert_eq!(super::imagenet(0), Some(("n01440764", "tench, Tinca tinca")));
        assert!(super::imagenet(999).is_some());
        assert!(super::imagenet(1000).is_none());
        assert_eq!(super::name(5, 10), "class 5");
    }
}
